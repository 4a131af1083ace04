// User authentication (pusher.signin()), sending to a user and terminating a user's
// connections through the official Node server library.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { connected, deferred, echoClient, pusherClient, serverLib, sleep, startAuthServer, uniq, waitUntil } from './helpers.mjs';

const auth = await startAuthServer();
const lib = serverLib();

function signedIn(client) {
  return waitUntil(() => client.user.user_data, 'pusher:signin_success');
}

test('signin: pusher.signin() -> signin_success with the user data from the endpoint', async () => {
  const user = uniq('user-');
  const client = pusherClient({ auth, user });
  client.signin();
  await connected(client);
  const data = await signedIn(client);
  assert.equal(data.id, user);
  assert.deepEqual(data.user_info, { name: `User ${user}` });
  assert.ok(auth.requests.some((r) => r.path === '/broadcasting/user-auth' && r.user === user));
});

test('sendToUser: the server library reaches every connection of the signed-in user', async () => {
  const user = uniq('user-');
  const a = pusherClient({ auth, user });
  const b = echoClient({ auth, user });
  a.signin();
  b.connector.signin(); // Echo's PusherConnector.signin() -> pusher.signin()
  const pb = await connected(b);
  await Promise.all([signedIn(a), signedIn(pb)]);
  const gotA = deferred('user event on connection a');
  const gotB = deferred('user event on connection b');
  a.user.bind('notice', gotA.resolve);
  pb.user.bind('notice', gotB.resolve);
  // pusher-js subscribes #server-to-user-<id> after signin; wait for it to settle.
  await waitUntil(
    () => a.user.serverToUserChannel?.subscribed && pb.user.serverToUserChannel?.subscribed,
    '#server-to-user channels subscribed',
  );
  const res = await lib.sendToUser(user, 'notice', { text: 'hi' });
  assert.equal(res.status, 200);
  assert.deepEqual(await gotA, { text: 'hi' });
  assert.deepEqual(await gotB, { text: 'hi' });
});

test('sendToUser does not reach other users', async () => {
  const [u1, u2] = [uniq('u1-'), uniq('u2-')];
  const a = pusherClient({ auth, user: u1 });
  const b = pusherClient({ auth, user: u2 });
  a.signin();
  b.signin();
  await Promise.all([signedIn(a), signedIn(b)]);
  await waitUntil(() => a.user.serverToUserChannel?.subscribed && b.user.serverToUserChannel?.subscribed, 'user channels');
  const got = deferred('the event for u1');
  let wrong = 0;
  a.user.bind('only', got.resolve);
  b.user.bind('only', () => {
    wrong += 1;
  });
  await lib.sendToUser(u1, 'only', { to: u1 });
  await got;
  await sleep(200);
  assert.equal(wrong, 0);
});

test('a client cannot subscribe to another user\'s #server-to-user channel', async () => {
  const client = pusherClient({ auth, user: uniq('nosy-') });
  await connected(client);
  const victim = uniq('victim-');
  const err = deferred('an error for subscribing #server-to-user of someone else');
  client.connection.bind('message', (m) => {
    if (m.event === 'pusher:subscription_error' || m.event === 'pusher:error') err.resolve(m);
  });
  client.send_event('pusher:subscribe', { channel: `#server-to-user-${victim}` });
  await err;
  const res = await lib.sendToUser(victim, 'leak', { secret: 1 });
  assert.equal(res.status, 200);
  let leaked = false;
  client.connection.bind('message', (m) => {
    if (m.event === 'leak') leaked = true;
  });
  await sleep(200);
  assert.equal(leaked, false);
});

test('terminateUserConnections closes every connection of that user with 4009, for good', async () => {
  const user = uniq('doomed-');
  const a = pusherClient({ auth, user });
  const b = echoClient({ auth, user });
  const pb = b.connector.pusher;
  const bystander = echoClient({ auth, user: uniq('bystander-') });
  a.signin();
  b.connector.signin();
  bystander.connector.signin();
  await Promise.all([signedIn(a), signedIn(pb), signedIn(bystander.connector.pusher)]);
  // The doomed user is also in a presence channel with the bystander.
  const room = uniq('terminate-room-');
  const left = [];
  const hereBy = deferred('bystander here');
  bystander.join(room).here(hereBy.resolve).leaving((m) => left.push(m));
  await hereBy;
  const hereB = deferred('doomed here');
  b.join(room).here(hereB.resolve);
  await hereB;

  const res = await lib.terminateUserConnections(user);
  assert.equal(res.status, 200);
  for (const c of [a, pb]) {
    await waitUntil(() => c.log.codes.includes(4009), `close 4009 (got ${JSON.stringify(c.log.codes)})`);
    await waitUntil(() => c.connection.state === 'disconnected', 'state "disconnected"');
  }
  await waitUntil(() => left.length === 1, 'the bystander to see the user leaving');
  assert.deepEqual(left, [{ name: `User ${user}` }]);
  const n = a.log.states.length + pb.log.states.length;
  await sleep(1200);
  assert.equal(a.log.states.length + pb.log.states.length, n, 'a terminated client reconnected');
  assert.equal(bystander.connectionStatus(), 'connected');
  assert.deepEqual(bystander.connector.pusher.log.codes, []);
});

test('signin with a forged signature closes the connection with 4009 (close mode)', async () => {
  const client = pusherClient({
    auth,
    user: uniq('forger-'),
    userAuthentication: {
      customHandler: ({ socketId }, callback) =>
        callback(null, { auth: `${lib.config.token.key}:${'0'.repeat(64)}`, user_data: JSON.stringify({ id: 'admin' }) }),
    },
  });
  client.signin();
  // No wait for "connected": the gateway may close before a poll sees that state.
  await waitUntil(() => client.log.codes.includes(4009), `code 4009 (got ${JSON.stringify(client.log.codes)})`);
  assert.ok(client.log.states.includes('connected'), client.log.states.join(','));
  await waitUntil(() => client.connection.state === 'disconnected', 'state "disconnected"');
  assert.equal(client.user.user_data, null);
});
