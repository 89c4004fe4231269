"""A real HTTP server on 127.0.0.1, in a thread, for the download tests."""

import http.server
import threading
from pathlib import Path


class Server:
    """A real HTTP server in a thread: ``/good/PATH`` serves the file, ``/truncated/PATH``
    announces its whole length and sends half, ``/altered/PATH`` sends it with one byte
    changed, ``/cut-chunk/PATH`` sends it chunked and stops inside the first chunk;
    ``hits`` counts the requests per path."""

    def __init__(self, root: Path):
        self.root, self.hits = root, {}
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                server.hits[self.path] = server.hits.get(self.path, 0) + 1
                mode, _, rel = self.path.lstrip("/").partition("/")
                file = server.root / rel
                if not file.is_file():
                    self.send_error(404)
                    return
                data = file.read_bytes()
                self.send_response(200)
                if mode == "cut-chunk":
                    self.send_header("Transfer-Encoding", "chunked")
                    self.end_headers()
                    self.wfile.write(f"{len(data):x}\r\n".encode() + data[: len(data) // 2])
                    self.close_connection = True
                    return
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if mode == "truncated":
                    data = data[: len(data) // 2]
                elif mode == "altered":
                    data = data[:-1] + bytes([data[-1] ^ 1])
                self.wfile.write(data)

            def log_message(self, *args):  # quiet
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
        self.thread.start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
