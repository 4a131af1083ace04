// Refused channel authorization: laravel-echo's .error() fires. A refusal by the app's auth
// endpoint never reaches the gateway; a bad signature does, and then the gateway's
// auth_failure policy decides: "close" -> close 4009 (pusher-js gives up), "error" ->
// subscription_error only, connection stays up.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  CLOSE_APP,
  ERROR_APP,
  connected,
  deferred,
  echoClient,
  pusherClient,
  sleep,
  startAuthServer,
  subscribed,
  uniq,
  waitUntil,
} from './helpers.mjs';

const closeAuth = await startAuthServer(CLOSE_APP);
const errorAuth = await startAuthServer(ERROR_APP);

test('endpoint says 403: Echo .error() fires with status 403, connection stays up', async () => {
  const echo = echoClient({ auth: closeAuth, user: 'u1' });
  await connected(echo);
  const err = deferred('.error() on a channel the endpoint refuses');
  echo.private(uniq('forbidden-')).error(err.resolve);
  const e = await err;
  assert.equal(e.type, 'AuthError');
  assert.equal(e.status, 403);
  await sleep(200);
  assert.equal(echo.connectionStatus(), 'connected');
});

test('guest (no bearer token): the endpoint refuses, .error() fires', async () => {
  const echo = echoClient({ auth: closeAuth });
  const err = deferred('.error() for a guest');
  echo.join(uniq('room-')).error(err.resolve);
  const e = await err;
  assert.equal(e.status, 403);
});

test('close mode: a forged signature -> .error(), pusher:error 4009, socket closed, no reconnect', async () => {
  const echo = echoClient({ auth: closeAuth, user: 'u2' });
  const pusher = await connected(echo);
  const err = deferred('.error() on a forged signature');
  echo.private(uniq('forged-')).error(err.resolve);
  const e = await err;
  // The gateway's subscription_error: {type: "AuthError", error, status}.
  assert.equal(e.type, 'AuthError', JSON.stringify(e));
  assert.equal(e.status, 401, JSON.stringify(e));
  await waitUntil(() => pusher.log.codes.includes(4009), `close code 4009 (got ${JSON.stringify(pusher.log.codes)})`);
  await waitUntil(() => pusher.connection.state === 'disconnected', 'state "disconnected"');
  const n = pusher.log.states.length;
  await sleep(1500);
  assert.equal(pusher.connection.state, 'disconnected');
  assert.deepEqual(pusher.log.states.slice(n), [], 'pusher-js reconnected after 4009');
  assert.equal(echo.connectionStatus(), 'disconnected');
});

test('close mode: a forged presence signature closes with 4009 too', async () => {
  const client = pusherClient({ auth: closeAuth, user: 'u3' });
  await connected(client);
  const ch = client.subscribe(`presence-${uniq('forged-')}`);
  const err = deferred('pusher:subscription_error');
  ch.bind('pusher:subscription_error', err.resolve);
  await err;
  await waitUntil(() => client.log.codes.includes(4009), `close code 4009 (got ${JSON.stringify(client.log.codes)})`);
  await waitUntil(() => client.connection.state === 'disconnected', 'state "disconnected"');
});

test('close mode: other subscriptions of the closed connection stop receiving', async () => {
  const client = pusherClient({ auth: closeAuth, user: 'u4' });
  await connected(client);
  const good = client.subscribe(`private-${uniq('fine-')}`);
  await subscribed(good);
  client.subscribe(`private-${uniq('forged-')}`);
  await waitUntil(() => client.connection.state === 'disconnected', 'state "disconnected"');
  assert.ok(client.log.codes.includes(4009), JSON.stringify(client.log.codes));
});

test('error mode: a forged signature -> .error() with the gateway status, connection stays up and usable', async () => {
  const echo = echoClient({ app: ERROR_APP, auth: errorAuth, user: 'u5' });
  const pusher = await connected(echo);
  const id = pusher.connection.socket_id;
  const err = deferred('.error() on a forged signature (error mode)');
  echo.private(uniq('forged-')).error(err.resolve);
  const e = await err;
  assert.equal(e.type, 'AuthError', JSON.stringify(e));
  assert.equal(e.status, 401, JSON.stringify(e));
  await sleep(500);
  assert.equal(pusher.connection.state, 'connected');
  assert.equal(pusher.connection.socket_id, id);
  assert.ok(!pusher.log.codes.includes(4009), JSON.stringify(pusher.log.codes));
  // Still usable: a good private channel subscribes afterwards.
  const ok = echo.private(uniq('fine-'));
  await subscribed(ok, 'a valid subscription after the refusal');
});

test('error mode: the refused channel can be retried with a valid signature', async () => {
  const client = pusherClient({ app: ERROR_APP, auth: errorAuth, user: 'u6' });
  await connected(client);
  const name = `private-${uniq('retry-forged-')}`;
  const ch = client.subscribe(name);
  const err = deferred('subscription_error');
  ch.bind('pusher:subscription_error', err.resolve);
  await err;
  assert.equal(ch.subscribed, false);
  client.unsubscribe(name);
  // A channel the endpoint signs properly, on the same connection.
  const good = client.subscribe(`private-${uniq('retry-ok-')}`);
  await subscribed(good);
});

test('subscribing to a private channel with no auth at all is refused by the gateway', async () => {
  const client = pusherClient({ app: ERROR_APP });
  await connected(client);
  const name = `private-${uniq('noauth-')}`;
  const err = deferred('subscription_error for a missing auth');
  // Bypass pusher-js's authorizer: send the subscribe frame as a broken client would.
  client.connection.bind('message', (m) => {
    if (m.event === 'pusher:subscription_error' && m.channel === name) err.resolve(m.data);
  });
  client.send_event('pusher:subscribe', { channel: name });
  const data = await err;
  assert.equal(data.type, 'AuthError', JSON.stringify(data));
  assert.equal(client.connection.state, 'connected');
});
