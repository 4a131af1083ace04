// uvgate's stricter policies as pusher-js experiences them:
//  - require_auth_within=2.5: a socket that neither signs in nor holds a channel that needed
//    a signature within 2.5 s is closed with 4009 (pusher-js does not reconnect);
//  - first_message="signin": before a good pusher:signin only ping/pong/signin are allowed.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import {
  APPS,
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

const DEADLINE = APPS.deadline;
const SIGNIN_FIRST = APPS.signin_first;
const skip = !DEADLINE || !SIGNIN_FIRST ? 'apps deadline / signin_first not configured' : false;
const deadlineAuth = DEADLINE && (await startAuthServer(DEADLINE));
const signinAuth = SIGNIN_FIRST && (await startAuthServer(SIGNIN_FIRST));

async function closedWith4009(client, within = 6000) {
  await waitUntil(() => client.log.codes.includes(4009), `close code 4009 (got ${JSON.stringify(client.log.codes)})`, within);
  await waitUntil(() => client.connection.state === 'disconnected', 'state "disconnected"');
  const n = client.log.states.length;
  await sleep(1200);
  assert.deepEqual(client.log.states.slice(n), [], 'pusher-js reconnected');
}

// The cases use separate apps' sockets and unique names: run them side by side.
describe('strict policies', { concurrency: true }, () => {
  test('require_auth_within: an idle socket is closed with 4009 after the window', { skip }, async () => {
    const client = pusherClient({ app: DEADLINE });
    await connected(client);
    const t0 = Date.now();
    await closedWith4009(client);
    const waited = Date.now() - t0;
    assert.ok(waited >= 2000, `closed too early: ${waited} ms`);
  });

  test('require_auth_within: a public channel does not count as authentication', { skip }, async () => {
    const client = pusherClient({ app: DEADLINE });
    await connected(client);
    await subscribed(client.subscribe(uniq('public-')));
    await closedWith4009(client);
  });

  test('require_auth_within: a private subscription in time keeps the socket', { skip }, async () => {
    const echo = echoClient({ app: DEADLINE, auth: deadlineAuth, user: 'd1' });
    const pusher = await connected(echo);
    await subscribed(echo.private(uniq('in-time-')));
    await sleep(3500);
    assert.equal(pusher.connection.state, 'connected');
    assert.deepEqual(pusher.log.codes, []);
  });

  test('require_auth_within: signing in keeps the socket', { skip }, async () => {
    const client = pusherClient({ app: DEADLINE, auth: deadlineAuth, user: 'd2' });
    client.signin();
    await waitUntil(() => client.user.user_data, 'signin_success');
    await sleep(3500);
    assert.equal(client.connection.state, 'connected');
    assert.deepEqual(client.log.codes, []);
  });

  test('first_message=signin: signin first, then channels work and the socket stays', { skip }, async () => {
    const client = pusherClient({ app: SIGNIN_FIRST, auth: signinAuth, user: 's1' });
    client.signin();
    await waitUntil(() => client.user.user_data, 'signin_success');
    const ch = client.subscribe(uniq('after-signin-'));
    await subscribed(ch);
    const priv = client.subscribe(`private-${uniq('after-signin-')}`);
    await subscribed(priv);
    await sleep(3000);
    assert.equal(client.connection.state, 'connected');
    assert.deepEqual(client.log.codes, []);
  });

  test('first_message=signin: subscribing before signing in closes with 4009', { skip }, async () => {
    const client = pusherClient({ app: SIGNIN_FIRST, auth: signinAuth, user: 's2' });
    client.subscribe(uniq('too-early-'));
    await closedWith4009(client);
  });

  test('first_message=signin: never signing in closes with 4009 after the window', { skip }, async () => {
    const client = pusherClient({ app: SIGNIN_FIRST });
    await connected(client);
    await closedWith4009(client);
  });

  test('first_message=signin: a forged signin closes with 4009', { skip }, async () => {
    const client = pusherClient({
      app: SIGNIN_FIRST,
      auth: signinAuth,
      user: 's3',
      userAuthentication: {
        customHandler: (_params, callback) =>
          callback(null, { auth: `${SIGNIN_FIRST.key}:${'ab'.repeat(32)}`, user_data: JSON.stringify({ id: 's3' }) }),
      },
    });
    client.signin();
    await closedWith4009(client);
  });

  test('first_message=signin: Echo whose app signs in first (connector.signin) works', { skip }, async () => {
    const echo = echoClient({ app: SIGNIN_FIRST, auth: signinAuth, user: 's4' });
    echo.connector.signin();
    const pusher = echo.connector.pusher;
    await waitUntil(() => pusher.user.user_data, 'signin_success');
    const got = deferred('.Ping on the private channel');
    const room = uniq('echo-signin-');
    const ch = echo.private(room).listen('.Ping', got.resolve);
    await subscribed(ch);
    assert.equal(pusher.connection.state, 'connected');
  });
});
