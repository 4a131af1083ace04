// A deploy: the gateway is stopped (SIGTERM) and started again on the same port. Its
// goodbye is close 4200 ("reconnect now"), so pusher-js reconnects by itself, gets a new
// socket id, re-subscribes (private and presence channels re-authorized through the
// endpoint) and receives events again. This file runs its own gateway process.
import { after, test } from 'node:test';
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

const CONFIG = process.env.UVGATE_JS_RESTART_CONFIG;
const PORT = Number(process.env.UVGATE_JS_RESTART_PORT);
const skip = !(CONFIG && PORT && GatewayProcess.available) ? 'UVGATE_JS_PYTHON/ROOT/RESTART_CONFIG/RESTART_PORT not set' : false;

const gw = skip ? null : new GatewayProcess(CONFIG, PORT);
after(() => gw?.stop());

test('SIGTERM: close 4200, pusher-js reconnects to the restarted gateway and resubscribes', { skip }, async () => {
  await gw.start();
  const env = { wsPort: PORT, wssPort: PORT };
  const auth = await startAuthServer();
  const lib = serverLib(undefined, { port: String(PORT) });
  const client = pusherClient({ auth, user: 'r1', ...env });
  await connected(client);
  const firstId = client.connection.socket_id;
  const pub = client.subscribe(uniq('deploy-'));
  const priv = client.subscribe(`private-${uniq('deploy-')}`);
  await Promise.all([subscribed(pub), subscribed(priv)]);
  const echo = echoClient({ auth, user: 'r2', ...env });
  const room = uniq('deploy-room-');
  const here = [];
  echo.join(room).here((m) => here.push(m));
  await waitUntil(() => here.length === 1, 'presence here()');

  await gw.stop();
  await waitUntil(() => client.log.codes.includes(4200), `close code 4200 (got ${JSON.stringify(client.log.codes)})`);
  assert.notEqual(client.connection.state, 'connected');
  await gw.start();

  // pusher-js retried at once (4200) while the gateway was down; that attempt hangs in
  // its connection strategy (15 s timeout per try), so the reconnect takes ~15 s.
  await waitUntil(
    () => client.connection.state === 'connected' && client.connection.socket_id !== firstId,
    `reconnect (states ${client.log.states.join(',')})`,
    30000,
  );
  await waitUntil(() => here.length === 2, 'presence here() again after the reconnect', 10000);
  assert.deepEqual(here[1], [{ name: 'User r2' }]);
  await Promise.all([subscribed(pub), subscribed(priv)]);
  const gotPub = once(pub, 'again', 'public event after the restart');
  const gotPriv = once(priv, 'again', 'private event after the restart');
  await lib.trigger([pub.name, priv.name], 'again', { ok: 1 });
  assert.deepEqual(await gotPub, { ok: 1 });
  assert.deepEqual(await gotPriv, { ok: 1 });
});
