// A deploy: the gateway is stopped (SIGTERM) and started again on the same port. Its
// goodbye is close 4200 ("reconnect now"), so pusher-js reconnects by itself, gets a new
// socket id, re-subscribes (private and presence channels re-authorized through the
// endpoint) and receives events again. This file runs its own gateway process.
import { spawn } from 'node:child_process';
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import {
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

const PYTHON = process.env.UVGATE_JS_PYTHON;
const ROOT = process.env.UVGATE_JS_ROOT;
const CONFIG = process.env.UVGATE_JS_RESTART_CONFIG;
const PORT = Number(process.env.UVGATE_JS_RESTART_PORT);
const skip = !(PYTHON && ROOT && CONFIG && PORT) ? 'UVGATE_JS_PYTHON/ROOT/RESTART_CONFIG/RESTART_PORT not set' : false;

let proc = null;
let output = '';

async function startGateway() {
  // Without UVGATE_* variables: the gateway reads its options from them.
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('UVGATE_')));
  proc = spawn(PYTHON, ['-m', 'gateway', 'serve', '--config', CONFIG], { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
  const child = proc;
  child.stdout.on('data', (d) => (output += d));
  child.stderr.on('data', (d) => (output += d));
  await waitUntil(() => output.includes(`:${PORT}/`) || child.exitCode !== null, `gateway start (${output})`, 15000);
  assert.equal(child.exitCode, null, `gateway exited: ${output}`);
}

async function stopGateway() {
  const child = proc;
  if (!child || child.exitCode !== null) return;
  const exited = new Promise((resolve) => child.once('exit', resolve));
  child.kill('SIGTERM');
  await Promise.race([exited, new Promise((r) => setTimeout(r, 8000))]);
  if (child.exitCode === null && child.signalCode === null) {
    child.kill('SIGKILL');
    await exited;
  }
}

after(stopGateway);

test('SIGTERM: close 4200, pusher-js reconnects to the restarted gateway and resubscribes', { skip }, async () => {
  await startGateway();
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

  output = '';
  await stopGateway();
  await waitUntil(() => client.log.codes.includes(4200), `close code 4200 (got ${JSON.stringify(client.log.codes)})`);
  assert.notEqual(client.connection.state, 'connected');
  await startGateway();

  // pusher-js retried at once (4200) while the gateway was down; after that refused
  // attempt its strategy waits for unavailableTimeout (10 s) before trying again.
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
