"""Encoura Data Lab API: settings, authentication, client, naming rules, Prefect tasks and a sandbox."""
