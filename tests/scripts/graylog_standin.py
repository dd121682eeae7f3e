#!/usr/bin/env python3
"""A stand-in for Graylog's REST API and GELF TCP input, for testing
scripts/graylog-provision.sh where no Graylog can run (no Docker here).

It is not Graylog. It answers the calls the provisioning script makes the way
Graylog 6.x/7.x does (read from graylog2-server's resources): lbstatus that
turns ALIVE after --ready-after seconds, basic auth, X-Requested-By on writes,
content-pack upload (400 for an id and revision already stored), the install
request's shape per major version (7.x wraps it in {"entity": ...}, 6.x does
not; the other shape is an unknown property, 400), every declared parameter
required with its type (500 otherwise), a second install creating a second
copy of everything (as Graylog does), streams created paused, and
/api/search/messages over the messages its GELF TCP inputs received
(NUL-delimited frames, opened when a pack's input is installed).

GET /standin/state shows what was created, for the test to count.

    graylog_standin.py --port 9000 --version 7.1.7 --password secret
"""
import argparse
import base64
import json
import re
import socket
import socketserver
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

LOCK = threading.Lock()
PACKS = {}  # id -> {rev: pack}
INSTALLATIONS = {}  # pack id -> [installation]
STREAMS = {}  # native id -> {"title", "paused"}
INPUTS = []  # {"id", "port", "title"}
MESSAGES = []  # stored field maps (no leading "_")
START = time.time()


def native_id():
    return uuid.uuid4().hex[:24]


class GelfTcp(socketserver.BaseRequestHandler):
    def handle(self):
        buf = b""
        while True:
            chunk = self.request.recv(65536)
            if not chunk:
                break
            buf += chunk
            while b"\0" in buf:
                frame, buf = buf.split(b"\0", 1)
                try:
                    msg = json.loads(frame)
                except ValueError:
                    continue
                stored = {}
                for k, v in msg.items():
                    if k == "host":
                        stored["source"] = v
                    elif k == "short_message":
                        stored["message"] = v
                    elif k.startswith("_") and k != "_id":
                        stored[k[1:]] = v
                    else:
                        stored[k] = v
                with LOCK:
                    MESSAGES.append(stored)


class GelfServer(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True


def matches(msg, query):
    """Lucene subset: terms `field:value` and `_exists_:field` joined by AND."""
    query = query.strip()
    if query in ("", "*"):
        return True
    for term in re.split(r"\s+AND\s+", query):
        field, _, value = term.partition(":")
        value = value.strip('"')
        if field == "_exists_":
            if value not in msg:
                return False
        elif str(msg.get(field)) != value:
            return False
    return True


class Api(BaseHTTPRequestHandler):
    server_version = "graylog-standin"

    def log_message(self, fmt, *args):  # quiet
        pass

    def send(self, status, body=None, headers=()):
        data = b"" if body is None else (body if isinstance(body, bytes) else json.dumps(body).encode())
        self.send_response(status)
        for k, v in headers:
            self.send_header(k, v)
        if body is not None:
            self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def error(self, status, message):
        self.send(status, {"type": "ApiError", "message": message})

    def authorized(self):
        want = "Basic " + base64.b64encode(f"{ARGS.user}:{ARGS.password}".encode()).decode()
        return self.headers.get("Authorization") == want

    def body(self):
        n = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(n) if n else b""
        try:
            return json.loads(raw) if raw else None
        except ValueError:
            return ValueError

    def do_GET(self):
        self.route("GET")

    def do_POST(self):
        self.route("POST")

    def route(self, method):
        path = self.path.split("?", 1)[0]
        if path == "/api/system/lbstatus":
            alive = time.time() - START >= ARGS.ready_after
            data = b"ALIVE" if alive else b"DEAD"
            self.send_response(200 if alive else 503)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
            return
        if path == "/standin/state":
            with LOCK:
                self.send(200, {"inputs": INPUTS, "streams": STREAMS, "messages": len(MESSAGES),
                                "installations": sum(len(v) for v in INSTALLATIONS.values()),
                                "packs": {k: sorted(v) for k, v in PACKS.items()}})
            return
        if not self.authorized():
            return self.error(401, "authentication required")
        if method == "POST" and not self.headers.get("X-Requested-By"):
            return self.error(400, "CSRF protection header is missing: X-Requested-By")
        body = self.body() if method == "POST" else None
        if body is ValueError:
            return self.error(400, "malformed JSON")
        with LOCK:
            self.dispatch(method, path, body)

    def dispatch(self, method, path, body):
        if method == "GET" and path == "/api/system":
            return self.send(200, {"facility": "graylog-server", "version": ARGS.version,
                                   "node_id": "standin", "lb_status": "alive"})
        if method == "POST" and path == "/api/system/content_packs":
            if not isinstance(body, dict) or body.get("v") != "1" or "entities" not in body:
                return self.error(400, "not a content pack v1")
            pid, rev = body.get("id"), body.get("rev")
            if rev in PACKS.get(pid, {}):
                return self.error(400, f"Content pack {pid} with this revision {rev} already found!")
            PACKS.setdefault(pid, {})[rev] = body
            return self.send(201, None, [("Location", f"{self.headers.get('Host')}/api/system/content_packs/{pid}")])
        m = re.fullmatch(r"/api/system/content_packs/([^/]+)", path)
        if method == "GET" and m:
            revs = PACKS.get(m.group(1))
            if not revs:
                return self.error(404, "not found")
            return self.send(200, {"content_pack_revisions": {str(r): p for r, p in revs.items()},
                                   "constraints_result": {}})
        m = re.fullmatch(r"/api/system/content_packs/([^/]+)/installations", path)
        if method == "GET" and m:
            found = INSTALLATIONS.get(m.group(1), [])
            return self.send(200, {"total": len(found), "installations": found})
        m = re.fullmatch(r"/api/system/content_packs/([^/]+)/(\d+)/installations", path)
        if method == "POST" and m:
            return self.install(m.group(1), int(m.group(2)), body)
        m = re.fullmatch(r"/api/streams/([^/]+)/resume", path)
        if method == "POST" and m:
            s = STREAMS.get(m.group(1))
            if s is None:
                return self.error(404, "stream not found")
            s["paused"] = False
            return self.send(204)
        if method == "POST" and path == "/api/search/messages":
            fields = (body or {}).get("fields") or ["source", "timestamp"]
            rows = [[msg.get(f) for f in fields] for msg in MESSAGES if matches(msg, (body or {}).get("query", "*"))]
            size = (body or {}).get("size") or 10
            return self.send(200, {"schema": [{"column_type": "field", "field": f, "name": f"field: {f}"} for f in fields],
                                   "datarows": rows[-size:], "metadata": {}})
        return self.error(404, f"no route {method} {path}")

    def install(self, pid, rev, body):
        pack = PACKS.get(pid, {}).get(rev)
        if pack is None:
            return self.error(404, "content pack not found")
        major = int(ARGS.version.split(".")[0])
        if not isinstance(body, dict):
            return self.error(400, "an installation request is an object")
        if major >= 7:
            if set(body) - {"entity", "share_request"} or "entity" not in body:
                return self.error(400, f"Unrecognized field {sorted(set(body) - {'entity', 'share_request'})}")
            body = body["entity"]
        elif "entity" in body:
            return self.error(400, 'Unrecognized field "entity"')
        supplied = body.get("parameters") or {}
        values = {}
        for p in pack.get("parameters", []):
            given = supplied.get(p["name"])
            if given is None:
                return self.error(500, f"Missing parameters: {p['name']}")
            if given.get("@type") != p["type"]:
                return self.error(500, f"Invalid parameter {p['name']}: {given.get('@type')} is not {p['type']}")
            values[p["name"]] = given["@value"]

        def value(vr):
            return values[vr["@value"]] if vr.get("@type") == "parameter" else vr.get("@value")

        created, servers = [], []
        for e in pack["entities"]:
            kind, data = e["type"]["name"], e["data"]
            nid = native_id()
            title = data.get("title")
            title = value(title) if isinstance(title, dict) else title
            if kind == "input":
                port = int(value(data["configuration"]["port"]))
                try:
                    srv = GelfServer(("127.0.0.1", port), GelfTcp)
                except OSError as err:
                    for s in servers:
                        s.server_close()
                    return self.error(500, f"Failed to install content pack {pid}/{rev}: input port {port}: {err}")
                servers.append(srv)
                INPUTS.append({"id": nid, "port": port, "title": title})
            elif kind == "stream":
                STREAMS[nid] = {"title": title, "paused": True}
            created.append({"id": nid, "content_pack_entity_id": e["id"], "type": e["type"], "title": title,
                            "found_on_system": False})
        for s in servers:
            threading.Thread(target=s.serve_forever, daemon=True).start()
        inst = {"_id": native_id(), "content_pack_id": pid, "content_pack_revision": rev,
                "parameters": supplied, "entities": created, "comment": body.get("comment", ""),
                "created_at": time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime()), "created_by": ARGS.user}
        INSTALLATIONS.setdefault(pid, []).append(inst)
        return self.send(200, inst)


def main():
    global ARGS
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--version", default="7.1.7")
    ap.add_argument("--user", default="admin")
    ap.add_argument("--password", default="admin")
    ap.add_argument("--ready-after", type=float, default=0.0)
    ARGS = ap.parse_args()
    server = ThreadingHTTPServer(("127.0.0.1", ARGS.port), Api)
    server.daemon_threads = True
    print(f"graylog stand-in {ARGS.version} on 127.0.0.1:{ARGS.port}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
