"""The Canvas LMS SIS import API and nothing else: token auth, the client, its retrying transport, models and
errors."""
