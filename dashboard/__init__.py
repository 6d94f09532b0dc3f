"""iter dashboard: the web page (Starlette + SSE) behind `iter dashboard`."""
