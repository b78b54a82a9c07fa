/**
 * The app the fleet benchmark runs under `deploy run`: an HTTP server on 127.0.0.1:$APP_PORT that
 * answers GET /healthz with 200 and every other request, after 5 ms (so that requests are in flight
 * when a member leaves), with "member <port>"; WebSocket messages are echoed. On SIGTERM, which
 * deploy run sends only after its drain, it closes its WebSockets with 1001 (going away, as a server
 * that shuts down does), finishes what is in flight and exits 0.
 */
import http from 'node:http';
import { WebSocketServer } from 'ws';

const port = Number(process.env.APP_PORT);
const server = http.createServer((req, res) => {
  if (req.url === '/healthz') {
    res.end('ok');
    return;
  }
  setTimeout(() => res.end(`member ${port}`), 5);
});
const sockets = new WebSocketServer({ server });
sockets.on('connection', (socket) => socket.on('message', (data) => socket.send(data)));
server.listen(port, '127.0.0.1');

process.on('SIGTERM', () => {
  for (const socket of sockets.clients) socket.close(1001, 'member stopping');
  server.close(() => process.exit(0));
  server.closeIdleConnections();
});
