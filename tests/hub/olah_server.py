"""A local stand-in for the Hugging Face Hub, for the publishing tests (run in its own venv, see conftest.py).

``olah`` (PyPI) serves the Hub's *read* API (``/api/models/{id}/revision/{rev}``, ``/{id}/resolve/{rev}/{file}``,
tree, paths-info, refs, ...) from local git repositories ("mirrors"). It refuses writes, so this script adds the
write endpoints that ``huggingface_hub`` calls when publishing, in front of olah's routes:

- ``POST /api/repos/create``                              create_repo (a git repo with an initial commit)
- ``POST /api/validate-yaml``                             ModelCard.validate (a few of the Hub's metadata rules)
- ``POST /api/models/{org}/{repo}/preupload/{rev}``       upload modes (``*.safetensors``/``*.png`` go through LFS)
- ``POST /{org}/{repo}.git/info/lfs/objects/batch``       LFS batch (basic transfer) + ``PUT /_lfs/{oid}``
- ``POST /api/models/{org}/{repo}/branch/{branch}``       create_branch
- ``POST /api/models/{org}/{repo}/commit/{rev}``          create_commit (NDJSON body) -> a git commit
- ``GET  /api/whoami-v2``                                 the token's user

It also fixes one difference from the Hub: olah answers 401 "repository not found" for a missing *file*, folder
(tree) or revision of an existing repo, where the Hub answers 404 EntryNotFound / RevisionNotFound, which
transformers and peft rely on to skip optional files (e.g. ``additional_chat_templates/``).

Test-only controls: ``GET /_test/state`` (repos, private flags, commits, requests seen) and ``POST /_test/fault``
(``{"status": 503, "count": 2}`` or ``{"delay": 5, "count": 1}``: the next ``count`` write requests fail or hang).

Usage: ``python olah_server.py --root DIR --port N --token TOKEN``.
"""

import argparse
import asyncio
import base64
import hashlib
import json
import os
import re
import subprocess

import yaml
from fastapi import Request
from fastapi.responses import JSONResponse, Response
from starlette.routing import Route

USER = "tester"
GIT_ENV = {
    **os.environ,
    "GIT_AUTHOR_NAME": "hub",
    "GIT_AUTHOR_EMAIL": "hub@localhost",
    "GIT_COMMITTER_NAME": "hub",
    "GIT_COMMITTER_EMAIL": "hub@localhost",
}
LFS_SUFFIXES = (".safetensors", ".bin", ".png", ".npz")
KNOWN_LICENSES = {"apache-2.0", "mit", "bsd-3-clause", "cc-by-4.0", "cc-by-sa-4.0", "cc-by-nc-4.0", "other", "unknown"}


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--root", required=True)
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--token", required=True)
    args = p.parse_args()

    import uvicorn
    from olah import server
    from olah.configs import OlahConfig
    from olah.utils.logging import build_logger

    mirrors = os.path.join(args.root, "mirrors")
    lfs_dir = os.path.join(args.root, "lfs")
    os.makedirs(os.path.join(mirrors, "models"), exist_ok=True)
    os.makedirs(lfs_dir, exist_ok=True)
    base = f"http://127.0.0.1:{args.port}"

    config = OlahConfig()
    config.host, config.port = "127.0.0.1", args.port
    config.offline = True
    config.mirrors_path = [mirrors]
    config.repos_path = os.path.join(args.root, "cache")
    config.mirror_scheme, config.mirror_netloc, config.mirror_lfs_netloc = "http", f"127.0.0.1:{args.port}", None
    config.mirror_lfs_netloc = config.mirror_netloc
    app = server.app
    app.state.app_settings = server.AppSettings(config=config)
    app.state.logger = build_logger("olah", "olah.log", logger_dir=os.path.join(args.root, "logs"))
    server.logger = app.state.logger

    state = {"repos": {}, "requests": [], "fault": None}

    def repo_path(org, repo):
        return os.path.join(mirrors, "models", org, repo)

    def git(path, *cmd):
        return subprocess.run(
            ["git", "-C", path, *cmd], env=GIT_ENV, check=True, capture_output=True, text=True
        ).stdout.strip()

    def authorised(request):
        return request.headers.get("authorization") == f"Bearer {args.token}"

    def unauthorised():
        return JSONResponse({"error": "Invalid credentials in Authorization header"}, status_code=401)

    def not_found(org, repo):
        return (
            JSONResponse({"error": "Repository not found"}, status_code=404, headers={"X-Error-Code": "RepoNotFound"})
            if not os.path.isdir(repo_path(org, repo))
            else None
        )

    async def create_repo(request: Request):
        if not authorised(request):
            return unauthorised()
        body = await request.json()
        if body.get("type", "model") != "model":
            return JSONResponse({"error": "only model repos here"}, status_code=400)
        org, name = body.get("organization") or USER, body["name"]
        path = repo_path(org, name)
        url = f"{base}/{org}/{name}"
        if os.path.isdir(path):
            return JSONResponse({"error": "You already created this model repo", "url": url}, status_code=409)
        os.makedirs(path)
        git(path, "init", "-q", "-b", "main")
        with open(os.path.join(path, ".gitattributes"), "w") as f:
            f.write("*.safetensors filter=lfs diff=lfs merge=lfs -text\n")
        git(path, "add", "-A")
        git(path, "commit", "-q", "-m", "initial commit")
        private = bool(body.get("private")) or body.get("visibility") == "private"
        state["repos"][f"{org}/{name}"] = {"private": private, "commits": []}
        return JSONResponse({"url": url, "name": f"{org}/{name}", "id": f"{org}/{name}"})

    async def validate_yaml(request: Request):
        content = (await request.json()).get("content") or ""
        m = re.match(r"^---\s*\n(.*?)\n---\s*(\n|$)", content, re.S)  # the card's front matter
        errors = []
        try:
            meta = (yaml.safe_load(m.group(1)) if m else {}) or {}
        except yaml.YAMLError as e:
            meta, errors = {}, [f"Invalid YAML: {e}"]
        if not isinstance(meta, dict):
            errors.append("metadata must be a mapping")
        else:
            if "license" in meta and meta["license"] not in KNOWN_LICENSES:
                errors.append(f"license '{meta['license']}' is not a known license identifier")
            for key in ("tags", "datasets"):
                if key in meta and not isinstance(meta[key], list):
                    errors.append(f"'{key}' must be a list")
            for entry in meta.get("model-index") or []:
                if not isinstance(entry, dict) or "name" not in entry or not isinstance(entry.get("results"), list):
                    errors.append("model-index entries need a name and a list of results")
                    continue
                for res in entry["results"]:
                    if "type" not in (res.get("task") or {}):
                        errors.append("model-index result without task.type")
                    for m in res.get("metrics") or []:
                        if "type" not in m or not isinstance(m.get("value"), (int, float)):
                            errors.append("model-index metric needs a type and a numeric value")
        if errors:
            return JSONResponse(
                {"error": "; ".join(errors), "errors": [{"message": e} for e in errors]}, status_code=400
            )
        return JSONResponse({"errors": [], "warnings": []})

    async def whoami(request: Request):
        if not authorised(request):
            return unauthorised()
        return JSONResponse({"type": "user", "name": USER, "orgs": [], "auth": {"type": "access_token"}})

    async def preupload(request: Request):
        org, repo = request.path_params["org"], request.path_params["repo"]
        if not authorised(request):
            return unauthorised()
        if (r := not_found(org, repo)) is not None:
            return r
        body = await request.json()
        files = [
            {
                "path": f["path"],
                "uploadMode": "lfs" if f["path"].endswith(LFS_SUFFIXES) and f["size"] > 0 else "regular",
                "shouldIgnore": False,
                "oid": None,
            }
            for f in body["files"]
        ]
        return JSONResponse({"files": files, "commitOid": None})

    async def lfs_batch(request: Request):
        org, repo = request.path_params["org"], request.path_params["repo"]
        if not authorised(request):
            return unauthorised()
        if (r := not_found(org, repo)) is not None:
            return r
        body = await request.json()
        objects = []
        for obj in body["objects"]:
            entry = {"oid": obj["oid"], "size": obj["size"], "authenticated": True}
            if not os.path.isfile(os.path.join(lfs_dir, obj["oid"])):
                entry["actions"] = {"upload": {"href": f"{base}/_lfs/{obj['oid']}", "header": {}}}
            objects.append(entry)
        return JSONResponse({"transfer": "basic", "objects": objects, "hash_algo": "sha256"})

    async def lfs_put(request: Request):
        oid = request.path_params["oid"]
        data = await request.body()
        if hashlib.sha256(data).hexdigest() != oid:
            return JSONResponse({"error": "sha256 mismatch"}, status_code=400)
        with open(os.path.join(lfs_dir, oid), "wb") as f:
            f.write(data)
        return Response(status_code=200)

    async def create_branch(request: Request):
        org, repo, branch = (request.path_params[k] for k in ("org", "repo", "branch"))
        if not authorised(request):
            return unauthorised()
        if (r := not_found(org, repo)) is not None:
            return r
        path = repo_path(org, repo)
        if branch in git(path, "branch", "--format=%(refname:short)").split():
            return JSONResponse({"error": f"Reference refs/heads/{branch} already exists"}, status_code=409)
        body = {}
        if await request.body():
            body = await request.json()
        git(path, "branch", branch, body.get("startingPoint") or "main")
        return JSONResponse({})

    async def commit(request: Request):
        org, repo, rev = (request.path_params[k] for k in ("org", "repo", "rev"))
        if not authorised(request):
            return unauthorised()
        if (r := not_found(org, repo)) is not None:
            return r
        path = repo_path(org, repo)
        if rev not in git(path, "branch", "--format=%(refname:short)").split():
            return JSONResponse(
                {"error": f"Invalid rev id: {rev}"}, status_code=404, headers={"X-Error-Code": "RevisionNotFound"}
            )
        lines = [json.loads(line) for line in (await request.body()).decode().splitlines() if line.strip()]
        header = next(x["value"] for x in lines if x["key"] == "header")
        git(path, "checkout", "-q", rev)
        for item in lines:
            key, value = item["key"], item["value"]
            if key in ("file", "lfsFile", "deletedFile"):
                target = os.path.normpath(os.path.join(path, value["path"]))
                if not target.startswith(path + os.sep) or "/.git/" in target + "/":
                    return JSONResponse({"error": f"invalid path {value['path']}"}, status_code=400)
            if key == "file":
                os.makedirs(os.path.dirname(target), exist_ok=True)
                with open(target, "wb") as f:
                    f.write(base64.b64decode(value["content"]))
            elif key == "lfsFile":
                blob = os.path.join(lfs_dir, value["oid"])
                if not os.path.isfile(blob):
                    return JSONResponse({"error": f"LFS object {value['oid']} was never uploaded"}, status_code=422)
                os.makedirs(os.path.dirname(target), exist_ok=True)
                with open(blob, "rb") as src, open(target, "wb") as dst:
                    dst.write(src.read())
            elif key == "deletedFile":
                if os.path.exists(target):
                    os.remove(target)
        git(path, "add", "-A")
        git(path, "commit", "-q", "--allow-empty", "-m", header.get("summary") or "commit")
        sha = git(path, "rev-parse", "HEAD")
        git(path, "checkout", "-q", "main")
        state["repos"].setdefault(f"{org}/{repo}", {"private": False, "commits": []})["commits"].append(
            {"revision": rev, "sha": sha, "summary": header.get("summary")}
        )
        return JSONResponse({"commitUrl": f"{base}/{org}/{repo}/commit/{sha}", "commitOid": sha})

    async def test_state(request: Request):
        return JSONResponse(state)

    async def test_fault(request: Request):
        state["fault"] = await request.json()
        return JSONResponse(state["fault"])

    routes = [
        Route("/api/repos/create", create_repo, methods=["POST"]),
        Route("/api/validate-yaml", validate_yaml, methods=["POST"]),
        Route("/api/whoami-v2", whoami, methods=["GET"]),
        Route("/api/models/{org}/{repo}/preupload/{rev:path}", preupload, methods=["POST"]),
        Route("/api/models/{org}/{repo}/branch/{branch:path}", create_branch, methods=["POST"]),
        Route("/api/models/{org}/{repo}/commit/{rev:path}", commit, methods=["POST"]),
        Route("/{org}/{repo}.git/info/lfs/objects/batch", lfs_batch, methods=["POST"]),
        Route("/_lfs/{oid}", lfs_put, methods=["PUT"]),
        Route("/_test/state", test_state, methods=["GET"]),
        Route("/_test/fault", test_fault, methods=["POST"]),
    ]
    app.router.routes[0:0] = routes  # before olah's catch-all routes

    resolve = re.compile(r"^/(?:models/)?([^/]+)/([^/]+)/resolve/([^/]+)/")
    tree = re.compile(r"^/api/models/([^/]+)/([^/]+)/(?:tree|paths-info)/")
    revision = re.compile(r"^/api/models/([^/]+)/([^/]+)/revision/([^/]+)")
    info = re.compile(r"^/api/models/([^/]+)/([^/]+)$")

    @app.middleware("http")
    async def hub_semantics(request: Request, call_next):
        path = request.url.path
        state["requests"].append({"method": request.method, "path": path})
        fault = state["fault"]
        if fault and fault.get("count", 0) > 0 and not path.startswith("/_test/") and request.method != "GET":
            fault["count"] -= 1
            state.setdefault("faulted", []).append(path)
            if fault.get("delay"):
                await asyncio.sleep(fault["delay"])
            else:
                return JSONResponse({"error": "injected fault"}, status_code=fault.get("status", 503))
        m = info.match(path)
        if m and request.method in ("GET", "HEAD") and os.path.isdir(repo_path(m.group(1), m.group(2))):
            request.scope["path"] = f"{path}/revision/main"  # olah serves repo info of mirrors per revision only
        response = await call_next(request)
        if response.status_code == 401:
            for pattern, code in ((resolve, "EntryNotFound"), (tree, "EntryNotFound"), (revision, "RevisionNotFound")):
                m = pattern.match(path)
                if m and os.path.isdir(repo_path(m.group(1), m.group(2))):
                    return JSONResponse({"error": code}, status_code=404, headers={"X-Error-Code": code})
        return response

    uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
