"""Where readings come from: one module per source type, their configs, and serving them.

``config`` holds one pydantic model per source type (the job spec's ``sources``);
``mqtt``, ``http`` and ``websocket`` serve live devices into the ingest log;
``replay`` reads bounded files; ``serve`` starts a job's live sources.
"""
