"""The HTTP side of the sandbox: the SIS import endpoints with Canvas's status codes and bodies."""

from __future__ import annotations

from datetime import UTC, datetime

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response

from sandbox.canvas.multipart import MultipartError, parse_multipart
from sandbox.canvas.state import RecordedRequest, SandboxState

DROP_STATUSES = ("deleted", "completed", "inactive")
USER_REMOVE_STATUSES = ("deleted", "suspended")
IMPORT_TYPES = ("instructure_csv",)


def _error(status: int, message: str, **headers: str) -> JSONResponse:
    return JSONResponse({"errors": [{"message": message}]}, status_code=status, headers=headers)


def _truthy(value: str | None) -> bool:
    return (value or "").lower() in ("1", "true", "on", "yes", "t")


def _norm(stamp: str) -> str:
    """An ISO timestamp as the sandbox stores created_at (UTC, seconds, no zone) for comparisons."""
    parsed = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    if parsed.tzinfo is not None:
        parsed = parsed.astimezone(UTC)
    return parsed.strftime("%Y-%m-%dT%H:%M:%S")


def create_app(state: SandboxState) -> FastAPI:
    app = FastAPI(title="Canvas sandbox", docs_url=None, redoc_url=None, openapi_url=None)

    def base_url(request: Request) -> str:
        return str(request.base_url).rstrip("/")

    @app.middleware("http")
    async def record_and_guard(request: Request, call_next):  # type: ignore[no-untyped-def]
        body = await request.body()
        content_type = request.headers.get("content-type", "")
        recorded = RecordedRequest(request.method, request.url.path, dict(request.query_params), content_type)
        if content_type.startswith("multipart/form-data"):
            try:
                recorded.fields, files = parse_multipart(body, content_type)
            except MultipartError as exc:
                with state.lock:
                    state.requests.append(recorded)
                return _error(400, f"Malformed multipart body: {exc}")
            recorded.files = {k: (f.filename, f.content_type, f.data) for k, f in files.items()}
        elif content_type.startswith("application/x-www-form-urlencoded"):
            from urllib.parse import parse_qsl

            recorded.fields = parse_qsl(body.decode("utf-8"), keep_blank_values=True)
        request.state.recorded = recorded
        request.state.raw_body = body
        with state.lock:
            state.requests.append(recorded)
            faultable = request.method in state.fault_methods
            if faultable and state.rate_limit_next_n > 0:
                state.rate_limit_next_n -= 1
                headers = {"X-Rate-Limit-Remaining": "0.0"}
                if state.retry_after is not None:
                    headers["Retry-After"] = state.retry_after
                return PlainTextResponse("403 Forbidden (Rate Limit Exceeded)\n", status_code=403, headers=headers)
            if faultable and state.fail_next_n_5xx > 0:
                state.fail_next_n_5xx -= 1
                return _error(state.fault_status, "Sandbox: injected server error")
        if request.url.path.startswith("/api/"):
            auth = request.headers.get("authorization", "")
            token = auth[7:] if auth.lower().startswith("bearer ") else request.query_params.get("access_token", "")
            if token != state.token:
                return _error(401, "Invalid access token.", **{"WWW-Authenticate": 'Bearer realm="canvas-lms"'})
        response = await call_next(request)
        response.headers["X-Rate-Limit-Remaining"] = "700.0"
        return response

    def check_account(account_id: str) -> JSONResponse | None:
        if account_id in (state.account_id, "self"):
            return None
        if account_id in state.sub_account_ids:
            return JSONResponse({"errors": ["SIS imports can only be executed on root accounts"]}, status_code=400)
        return _error(404, "The specified resource does not exist.")

    @app.get("/api/v1/accounts/{account_id}")
    async def get_account(account_id: str) -> Response:
        if account_id in state.sub_account_ids:
            return JSONResponse(
                {
                    "id": int(account_id),
                    "name": "Sandbox sub-account",
                    "root_account_id": 1,
                    "parent_account_id": 1,
                    "workflow_state": "active",
                }
            )
        if account_id not in (state.account_id, "self"):
            return _error(404, "The specified resource does not exist.")
        return JSONResponse(
            {
                "id": int(state.account_id),
                "name": "Sandbox University",
                "root_account_id": None,
                "parent_account_id": None,
                "workflow_state": "active",
            }
        )

    @app.post("/api/v1/accounts/{account_id}/sis_imports")
    @app.post("/api/v1/accounts/{account_id}/sis_imports.json")
    async def create(account_id: str, request: Request) -> Response:
        if (refusal := check_account(account_id)) is not None:
            return refusal
        recorded: RecordedRequest = request.state.recorded
        options = dict(request.query_params)
        options.update(dict(recorded.fields))
        if "attachment" in recorded.files:
            filename, _ctype, data = recorded.files["attachment"]
        elif recorded.content_type.startswith("multipart/form-data"):
            return JSONResponse({"error": True, "error_message": "Missing attachment"}, status_code=400)
        else:
            data = request.state.raw_body
            ext = options.get("extension") or {
                "application/zip": "zip",
                "text/xml": "xml",
                "text/plain": "csv",
                "text/csv": "csv",
            }.get(recorded.content_type.split(";")[0], "zip")
            filename = f"sis_import.{ext}"
        import_type = options.setdefault("import_type", "instructure_csv")
        if import_type not in IMPORT_TYPES:
            return _error(500, "An error occurred (invalid import type parameter)")
        if (
            _truthy(options.get("batch_mode"))
            and not options.get("batch_mode_term_id")
            and not options.get("multi_term_batch_mode")
        ):
            return JSONResponse(
                {"message": "Batch mode specified, but the given batch_mode_term_id cannot be found."}, status_code=400
            )
        term = options.get("batch_mode_term_id")
        known = state.known_term_ids
        if _truthy(options.get("batch_mode")) and term and known is not None and term not in known:
            return _error(404, "The specified resource does not exist.")  # Canvas: RecordNotFound
        if (
            options.get("multi_term_batch_mode")
            and not options.get("batch_mode_term_id")
            and not options.get("change_threshold")
        ):
            return JSONResponse(
                {"message": "change_threshold is required to use multi term_batch mode."}, status_code=400
            )
        for name, allowed in (
            ("diffing_drop_status", DROP_STATUSES),
            ("diffing_user_remove_status", USER_REMOVE_STATUSES),
            ("batch_mode_enrollment_drop_status", DROP_STATUSES),
        ):
            if options.get(name) and options[name] not in allowed:
                return JSONResponse({"message": f"Invalid {name}"}, status_code=400)
        record = state.create_import(filename, data, options)
        with state.lock:
            if state.fail_after_create_next_n > 0:
                state.fail_after_create_next_n -= 1
                return _error(500, "Sandbox: failed after creating the import")
        return JSONResponse(state.render(record, base_url(request)))

    @app.get("/api/v1/accounts/{account_id}/sis_imports")
    async def index(account_id: str, request: Request) -> Response:
        """Newest first; created_since / created_before / workflow_state[] filters; per_page + page with a
        Link header (rel next/first/current/last) like every Canvas list endpoint."""
        if (refusal := check_account(account_id)) is not None:
            return refusal
        query = request.query_params
        since, before = query.get("created_since"), query.get("created_before")
        wanted = set(query.getlist("workflow_state[]"))
        try:
            per_page = max(1, min(int(query.get("per_page", "10")), 100))
            page = max(1, int(query.get("page", "1")))
        except ValueError:
            return _error(400, "Invalid page or per_page")
        try:
            since, before = (_norm(since) if since else None), (_norm(before) if before else None)
        except ValueError:
            return _error(400, "Invalid created_since or created_before")
        with state.lock:
            records = sorted(state.imports.values(), key=lambda r: r.id, reverse=True)
            if since:
                records = [r for r in records if r.created_at[:19] >= since]
            if before:
                records = [r for r in records if r.created_at[:19] < before]
            if wanted:
                records = [r for r in records if state.state_of(r) in wanted]
            last = max(1, -(-len(records) // per_page))
            chunk = records[(page - 1) * per_page : page * per_page]
            body = {"sis_imports": [state.render(r, base_url(request)) for r in chunk]}
        links = [("current", page), ("first", 1), ("last", last)]
        if page < last:
            links.insert(0, ("next", page + 1))
        header = ",".join(f'<{request.url.include_query_params(page=p, per_page=per_page)}>; rel="{rel}"'
                          for rel, p in links)  # fmt: skip
        return JSONResponse(body, headers={"Link": header})

    @app.get("/api/v1/accounts/{account_id}/sis_imports/importing")
    async def importing(account_id: str, request: Request) -> Response:
        if (refusal := check_account(account_id)) is not None:
            return refusal
        with state.lock:
            running = [r for r in state.imports.values() if state.state_of(r) in ("importing", "cleanup_batch")]
            return JSONResponse({"sis_imports": [state.render(r, base_url(request)) for r in running]})

    @app.put("/api/v1/accounts/{account_id}/sis_imports/abort_all_pending")
    async def abort_all_pending(account_id: str) -> Response:
        if (refusal := check_account(account_id)) is not None:
            return refusal
        state.abort_all_pending()
        return JSONResponse({"aborted": True})

    @app.put("/api/v1/accounts/{account_id}/sis_imports/{import_id}/restore_states")
    async def restore_states(account_id: str, import_id: int, request: Request) -> Response:
        if (refusal := check_account(account_id)) is not None:
            return refusal
        record = state.imports.get(import_id)
        if record is None:
            return _error(404, "The specified resource does not exist.")
        params = {**dict(request.query_params), **dict(request.state.recorded.fields)}
        if _truthy(params.get("undelete_only")) and _truthy(params.get("unconclude_only")):
            return _error(400, "cannot set both undelete_only and unconclude_only")
        if not state.is_done(record):
            return _error(400, "SIS import must be finished to restore states")
        return JSONResponse(state.restore(record, params))

    @app.get("/api/v1/accounts/{account_id}/sis_imports/{import_id}")
    async def show(account_id: str, import_id: int, request: Request) -> Response:
        if (refusal := check_account(account_id)) is not None:
            return refusal
        record = state.imports.get(import_id)
        if record is None:
            return _error(404, "The specified resource does not exist.")
        body = state.render(record, base_url(request))
        state.advance(record)  # the next poll sees the next step
        return JSONResponse(body)

    @app.put("/api/v1/accounts/{account_id}/sis_imports/{import_id}/abort")
    async def abort(account_id: str, import_id: int, request: Request) -> Response:
        if (refusal := check_account(account_id)) is not None:
            return refusal
        record = state.imports.get(import_id)
        if record is None or not state.abort(record):
            return _error(404, "The specified resource does not exist.")
        return JSONResponse(state.render(record, base_url(request)))

    @app.get("/files/{file_id}/download")
    async def download(file_id: int, request: Request) -> Response:
        with state.lock:
            entry = state.files.get(file_id)
        if entry is None or request.query_params.get("verifier") != entry[2]:
            return _error(404, "The specified resource does not exist.")
        name, data, _ = entry
        return Response(data, media_type="text/csv", headers={"Content-Disposition": f'attachment; filename="{name}"'})

    return app
