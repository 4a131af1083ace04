// `uvgate serve --workers 2 --redis URL` with Pusher: the kernel (SO_REUSEPORT) spreads
// connections and HTTP API requests over the workers, and the workers, each a node of the
// cluster, share Pusher's state through Redis. A client must not care which worker it
// landed on: an API trigger reaches every subscriber, presence lists every member, a
// whisper reaches every other client. This file runs its own 2-worker gateway.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import {
  GatewayProcess,
  connected,
  deferred,
  echoClient,
  pusherClient,
  serverLib,
  startAuthServer,
  subscribed,
  uniq,
  waitUntil,
} from './helpers.mjs';

const CONFIG = process.env.UVGATE_JS_WORKERS_CONFIG;
const PORT = Number(process.env.UVGATE_JS_WORKERS_PORT);
// tests/gateway/pusher/test_pusher_js.py gives the 2-worker gateway's config (and its redis-server).
const skip = !(CONFIG && PORT && GatewayProcess.available)
  ? 'no 2-worker gateway configured (run through tests/gateway/pusher/test_pusher_js.py)'
  : false;
const gw = skip ? null : new GatewayProcess(CONFIG, PORT);
const N = 8; // P(all N on one worker) = 2 / 2**N

// At top level: startAuthServer's after() hook would close it at the end of a before().
const auth = skip ? null : await startAuthServer();

describe('two workers', { skip }, () => {
  before(() => gw.start());
  after(() => gw.stop());
  const opts = () => ({ wsPort: PORT, wssPort: PORT });

  test('an API trigger reaches subscribers on every worker', async () => {
    const lib = serverLib(undefined, { port: String(PORT) });
    const name = uniq('fanout-');
    const clients = Array.from({ length: N }, () => pusherClient(opts()));
    const channels = clients.map((c) => c.subscribe(name));
    await Promise.all(channels.map((ch) => subscribed(ch)));
    let got = 0;
    for (const ch of channels) ch.bind('ev', () => (got += 1));
    for (let i = 0; i < 3; i += 1) await lib.trigger(name, 'ev', { i }); // 3 API connections
    await waitUntil(() => got === 3 * N, `${3 * N} deliveries (got ${got})`, 3000);
  });

  test('presence lists the members connected to every worker', async () => {
    const room = uniq('split-room-');
    const echos = Array.from({ length: N }, (_, i) => echoClient({ auth, user: `w${i}`, ...opts() }));
    const heres = echos.map((e) => {
      const d = deferred('here');
      e.join(room).here(d.resolve);
      return d;
    });
    await Promise.all(heres);
    const counts = () => echos.map((e) => e.connector.pusher.channel(`presence-${room}`).members.count);
    await waitUntil(() => counts().every((n) => n === N), `every client to count ${N} members (got ${counts()})`, 3000);
    const lib = serverLib(undefined, { port: String(PORT) });
    const users = await (await lib.get({ path: `/channels/presence-${room}/users` })).json();
    assert.equal(users.users.length, N, JSON.stringify(users));
  });

  test('whispers reach the other clients on every worker', async () => {
    const room = uniq('split-whisper-');
    const echos = Array.from({ length: N }, (_, i) => echoClient({ auth, user: `x${i}`, ...opts() }));
    const chans = echos.map((e) => e.private(room));
    let heard = 0;
    for (const ch of chans.slice(1)) ch.listenForWhisper('hi', () => (heard += 1));
    await Promise.all(chans.map((ch) => subscribed(ch)));
    await connected(echos[0]);
    chans[0].whisper('hi', {});
    await waitUntil(() => heard === N - 1, `${N - 1} whispers heard (got ${heard})`, 3000);
  });
});
