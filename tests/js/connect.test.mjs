// Connecting: pusher-js reaches "connected" with a well-formed socket id; the wrong key is
// refused with 4001 and pusher-js does not reconnect.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { CLOSE_APP, ERROR_APP, connected, echoClient, pusherClient, sleep, waitUntil } from './helpers.mjs';

test('pusher-js connects and gets a socket id of the form digits.digits', async () => {
  const client = pusherClient();
  await connected(client);
  assert.equal(client.connection.state, 'connected');
  assert.match(client.connection.socket_id, /^\d+\.\d+$/);
  assert.deepEqual(client.log.errors, []);
  client.disconnect();
  await waitUntil(() => client.connection.state === 'disconnected', 'disconnect');
});

test('socket ids differ between connections', async () => {
  const a = pusherClient();
  const b = pusherClient({ app: ERROR_APP });
  await Promise.all([connected(a), connected(b)]);
  assert.notEqual(a.connection.socket_id, b.connection.socket_id);
});

test('laravel-echo (broadcaster reverb, Pusher option) connects', async () => {
  const echo = echoClient();
  await connected(echo);
  assert.equal(echo.connectionStatus(), 'connected');
  assert.match(echo.socketId(), /^\d+\.\d+$/);
});

test('pusher-js answers the activity check: ping gets a pong, connection stays up', async () => {
  // activityTimeout (client side) 1 s: pusher-js sends pusher:ping after 1 s of silence
  // and drops the connection if no pusher:pong comes within pongTimeout.
  const client = pusherClient({ activityTimeout: 1000, pongTimeout: 1500 });
  await connected(client);
  const id = client.connection.socket_id;
  let pongs = 0;
  client.connection.bind('message', (m) => {
    if (m.event === 'pusher:pong') pongs += 1;
  });
  await waitUntil(() => pongs >= 2, 'two pusher:pong replies', 6000);
  assert.equal(client.connection.state, 'connected');
  assert.equal(client.connection.socket_id, id, 'the connection was never replaced');
});

test('unknown app key: pusher:error 4001, state disconnected, no reconnect', async () => {
  const client = pusherClient({ key: 'no-such-key' });
  await waitUntil(() => client.log.codes.includes(4001), `error code 4001 (got ${JSON.stringify(client.log.codes)})`);
  await waitUntil(() => client.connection.state === 'disconnected', 'state "disconnected"');
  const states = client.log.states.length;
  await sleep(1500);
  assert.equal(client.connection.state, 'disconnected');
  assert.deepEqual(client.log.states.slice(states), [], 'pusher-js tried to connect again');
  // The first "connecting" happens inside the constructor, before the log is bound.
  assert.ok(client.log.states.filter((s) => s === 'connecting').length <= 1, client.log.states.join(','));
  assert.ok(!client.log.states.includes('connected'));
});

test('both configured apps accept connections', async () => {
  for (const app of [CLOSE_APP, ERROR_APP]) {
    const client = pusherClient({ app });
    await connected(client);
    client.disconnect();
  }
});
