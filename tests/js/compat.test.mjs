// Older clients still in many Laravel apps: laravel-echo 1.x with pusher-js 7.x (npm
// aliases laravel-echo-1 and pusher-js-7), both the classic `broadcaster: 'pusher'` setup
// and `broadcaster: 'reverb'`.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import EchoModule1 from 'laravel-echo-1';
import Pusher7 from 'pusher-js-7';
import {
  connected,
  deferred,
  echoClient,
  once,
  pusherClient,
  serverLib,
  sleep,
  startAuthServer,
  subscribed,
  uniq,
  waitUntil,
} from './helpers.mjs';

const Echo1 = EchoModule1.default ?? EchoModule1;
const auth = await startAuthServer();
const lib = serverLib();

for (const broadcaster of ['pusher', 'reverb']) {
  const old = (user) => echoClient({ auth, user, EchoClass: Echo1, PusherClass: Pusher7, broadcaster, cluster: 'mt1' });

  test(`echo 1 + pusher-js 7 (${broadcaster}): connect, public and private events`, async () => {
    const echo = old('old-1');
    const pusher = await connected(echo);
    assert.match(pusher.connection.socket_id, /^\d+\.\d+$/);
    const name = uniq('old-pub-');
    const room = uniq('old-priv-');
    const pub = deferred('public event');
    const priv = deferred('private event');
    const c1 = echo.channel(name).listen('.Ev', pub.resolve);
    const c2 = echo.private(room).listen('.Ev', priv.resolve);
    await Promise.all([subscribed(c1), subscribed(c2)]);
    await lib.trigger([name, `private-${room}`], 'Ev', { v: 7 });
    assert.deepEqual(await pub, { v: 7 });
    assert.deepEqual(await priv, { v: 7 });
  });

  test(`echo 1 + pusher-js 7 (${broadcaster}): presence and whisper`, async () => {
    const room = uniq('old-room-');
    const a = old('old-a');
    const b = old('old-b');
    const ha = deferred('here a');
    const joined = [];
    a.join(room).here(ha.resolve).joining((m) => joined.push(m));
    await ha;
    const hb = deferred('here b');
    const heard = deferred('whisper');
    b.join(room).here(hb.resolve).listenForWhisper('typing', heard.resolve);
    assert.equal((await hb).length, 2);
    await waitUntil(() => joined.length === 1, 'joining');
    a.join(room).whisper('typing', { x: 1 });
    assert.deepEqual(await heard, { x: 1 });
  });

  test(`echo 1 + pusher-js 7 (${broadcaster}): encrypted private channel`, async () => {
    const room = uniq('old-enc-');
    const echo = old('old-enc');
    const got = deferred('decrypted event');
    const ch = echo.encryptedPrivate(room).listen('.Secret', got.resolve);
    await subscribed(ch);
    await lib.trigger(`private-encrypted-${room}`, 'Secret', { s: 1 });
    assert.deepEqual(await got, { s: 1 });
  });
}

test('pusher-js 7: signin, sendToUser, forged auth closes with 4009', async () => {
  const user = uniq('old-user-');
  const client = pusherClient({ auth, user, PusherClass: Pusher7 });
  client.signin();
  await waitUntil(() => client.user.user_data, 'signin_success');
  await waitUntil(() => client.user.serverToUserChannel?.subscribed, '#server-to-user subscribed');
  const got = deferred('user event');
  client.user.bind('hello', got.resolve);
  await lib.sendToUser(user, 'hello', { hi: 1 });
  assert.deepEqual(await got, { hi: 1 });
  client.subscribe(`private-${uniq('forged-')}`);
  await waitUntil(() => client.log.codes.includes(4009), `4009 (got ${JSON.stringify(client.log.codes)})`);
  await waitUntil(() => client.connection.state === 'disconnected', 'disconnected');
  await sleep(500);
  assert.equal(client.connection.state, 'disconnected');
});

test('pusher-js 7: cache channel replay and cache_miss', async () => {
  const client = pusherClient({ PusherClass: Pusher7 });
  const full = uniq('cache-old-');
  await lib.trigger(full, 'ev', { c: 1 });
  const ch = client.subscribe(full);
  assert.deepEqual(await once(ch, 'ev', 'cached event'), { c: 1 });
  const empty = client.subscribe(uniq('cache-old-empty-'));
  await once(empty, 'pusher:cache_miss', 'cache_miss');
});
