"""The HTTP API (FastAPI): ingest, webhooks, queries, health and metrics over the service layer."""
