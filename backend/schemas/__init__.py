"""pydantic models of everything genhook sends or receives: the API, webhooks, problems.

They are the single description of the wire format: the API validates with them, the
OpenAPI document and the exported JSON Schemas (``schemas/``) are generated from them.
"""
