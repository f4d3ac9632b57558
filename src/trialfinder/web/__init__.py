"""`trialfinder serve`: the web pages and JSON API, on the same library and store.

`app.create_app(Settings(...))` builds the ASGI application (Starlette, Jinja2 templates with
autoescaping); `server.serve(...)` runs it with uvicorn. Nothing here decides a domain rule:
answers come from `queries`, `render`, `summary`, `referral`, `mapping` and `gazetteer`.
Imported only by the `serve` command, so the other commands never pay for Starlette.
"""
