"""The Encoura Data Lab API and nothing else: settings, the httpx Auth flow, the client, models and errors.

Knows no storage, no ledger and no flow, so it can be reused by any job that talks to Encoura."""
