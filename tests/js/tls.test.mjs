// Production shape: wss:// with a certificate (self-signed here, trusted through
// NODE_EXTRA_CA_CERTS), Echo with forceTLS, the server library over https. This file runs
// its own TLS gateway.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import {
  GatewayProcess,
  connected,
  deferred,
  echoClient,
  once,
  pusherClient,
  serverLib,
  startAuthServer,
  subscribed,
  uniq,
  waitUntil,
} from './helpers.mjs';

const CONFIG = process.env.UVGATE_JS_TLS_CONFIG;
const PORT = Number(process.env.UVGATE_JS_TLS_PORT);
const skip = !(CONFIG && PORT && GatewayProcess.available && process.env.NODE_EXTRA_CA_CERTS)
  ? 'UVGATE_JS_TLS_CONFIG/PORT or NODE_EXTRA_CA_CERTS not set'
  : false;
const gw = skip ? null : new GatewayProcess(CONFIG, PORT);
const auth = skip ? null : await startAuthServer();
const tls = { wsHost: 'localhost', wsPort: PORT, wssPort: PORT, forceTLS: true };

describe('wss://', { skip }, () => {
  before(() => gw.start());
  after(() => gw.stop());

  test('pusher-js over wss: connect, private channel, event from the server library over https', async () => {
    // enabledTransports ['ws'] (from pusherClient): pusher-js has no transport named 'wss'; forceTLS
    // makes its ws transport use wss://.
    const client = pusherClient({ auth, user: 't1', ...tls });
    await connected(client);
    assert.match(client.connection.socket_id, /^\d+\.\d+$/);
    const room = `private-${uniq('tls-')}`;
    const ch = client.subscribe(room);
    await subscribed(ch);
    const lib = serverLib(undefined, { host: 'localhost', port: String(PORT), useTLS: true });
    const got = once(ch, 'Secure', 'the event over wss');
    const res = await lib.trigger(room, 'Secure', { tls: true });
    assert.equal(res.status, 200);
    assert.deepEqual(await got, { tls: true });
  });

  test('Echo (reverb, forceTLS) presence over wss', async () => {
    const room = uniq('tls-room-');
    const a = echoClient({ auth, user: 't2', ...tls });
    const b = echoClient({ auth, user: 't3', ...tls });
    const ha = deferred('here a');
    const joined = [];
    a.join(room).here(ha.resolve).joining((m) => joined.push(m));
    await ha;
    const hb = deferred('here b');
    b.join(room).here(hb.resolve);
    assert.equal((await hb).length, 2);
    await waitUntil(() => joined.length === 1, 'joining over wss');
  });

  test('a plain ws:// client cannot talk to the TLS port', async () => {
    const client = pusherClient({ wsPort: PORT, forceTLS: false, enabledTransports: ['ws'], unavailableTimeout: 1500 });
    await waitUntil(() => ['unavailable', 'failed', 'disconnected'].includes(client.connection.state), 'the plain client to give up', 8000);
    assert.notEqual(client.connection.state, 'connected');
  });
});
