// Edges a Laravel app meets in production: app isolation, Laravel's notification channel
// names, odd payloads (Unicode, U+2028, quotes, plain strings), size and name limits.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  CLOSE_APP,
  ERROR_APP,
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

const auth = await startAuthServer();
const lib = serverLib();

async function rejected(promise) {
  try {
    await promise;
  } catch (err) {
    return err;
  }
  throw new Error('the request succeeded');
}

const WEIRD = {
  emoji: '🚀 café ünïcödé 漢字',
  separators: 'line\u2028para\u2029end',
  quotes: 'he said "hi" \\ o/ \'x\'',
  control: 'tab\tnewline\nnull\u0001',
  html: '<script>alert(1)</script>&amp;',
  nested: { deep: [1, 2.5, null, true, { k: 'v' }] },
};

test('apps are isolated: the same channel name in two apps never crosses', async () => {
  const name = uniq('shared-');
  const a = pusherClient({ app: CLOSE_APP });
  const b = pusherClient({ app: ERROR_APP });
  const ca = a.subscribe(name);
  const cb = b.subscribe(name);
  await Promise.all([subscribed(ca), subscribed(cb)]);
  let crossed = 0;
  cb.bind('only-a', () => {
    crossed += 1;
  });
  const got = once(ca, 'only-a', 'event in app A');
  await lib.trigger(name, 'only-a', {});
  await got;
  await sleep(200);
  assert.equal(crossed, 0, 'app B got app A\'s event');
  const info = await (await serverLib(ERROR_APP).get({ path: `/channels/${name}`, params: { info: 'subscription_count' } })).json();
  assert.equal(info.subscription_count, 1);
});

test('apps are isolated: presence members and whispers stay in their app', async () => {
  const room = uniq('iso-room-');
  const authB = await startAuthServer(ERROR_APP);
  const a = echoClient({ app: CLOSE_APP, auth, user: 'iso-a' });
  const b = echoClient({ app: ERROR_APP, auth: authB, user: 'iso-b' });
  const ha = deferred('here a');
  const hb = deferred('here b');
  let heard = 0;
  a.join(room).here(ha.resolve).listenForWhisper('w', () => {
    heard += 1;
  });
  b.join(room).here(hb.resolve);
  assert.equal((await ha).length, 1);
  assert.equal((await hb).length, 1);
  b.join(room).whisper('w', {});
  await sleep(200);
  assert.equal(heard, 0);
});

test('Laravel notifications: private-App.Models.User.{id} and .notification()', async () => {
  const id = uniq('');
  const echo = echoClient({ auth, user: id });
  const got = deferred('the notification');
  const ch = echo.private(`App.Models.User.${id}`).notification(got.resolve);
  await subscribed(ch);
  const payload = { id: 'n1', type: 'App\\Notifications\\InvoicePaid', amount: 5 };
  await lib.trigger(`private-App.Models.User.${id}`, 'Illuminate\\Notifications\\Events\\BroadcastNotificationCreated', payload);
  assert.deepEqual(await got, payload);
});

test('payloads survive byte for byte: Unicode, U+2028, quotes, control characters (API)', async () => {
  const client = pusherClient();
  const name = uniq('weird-');
  const ch = client.subscribe(name);
  await subscribed(ch);
  const got = once(ch, 'weird', 'the weird payload');
  await lib.trigger(name, 'weird', WEIRD);
  assert.deepEqual(await got, WEIRD);
});

test('payloads survive byte for byte in client events (whisper)', async () => {
  const room = uniq('weird-whisper-');
  const a = echoClient({ auth, user: 'wa' });
  const b = echoClient({ auth, user: 'wb' });
  const chA = a.private(room);
  const chB = b.private(room);
  const got = deferred('the weird whisper');
  chB.listenForWhisper('weird', got.resolve);
  await Promise.all([subscribed(chA), subscribed(chB)]);
  chA.whisper('weird', WEIRD);
  assert.deepEqual(await got, WEIRD);
});

test('a plain-string payload arrives as that string', async () => {
  const client = pusherClient();
  const name = uniq('plain-');
  const ch = client.subscribe(name);
  await subscribed(ch);
  const got = once(ch, 'plain', 'the string payload');
  await lib.post({ path: '/events', body: { name: 'plain', channels: [name], data: 'just text, not JSON' } });
  assert.equal(await got, 'just text, not JSON');
});

test('presence user_info with Unicode reaches the other members as sent', async () => {
  const room = uniq('uni-room-');
  const user = 'Zoë-漢字';
  const a = echoClient({ auth, user });
  const b = echoClient({ auth, user: 'plain' });
  const ha = deferred('here a');
  a.join(room).here(ha.resolve);
  await ha;
  const hb = deferred('here b');
  b.join(room).here(hb.resolve);
  const members = await hb;
  assert.ok(members.some((m) => m.name === `User ${user}`), JSON.stringify(members));
  const users = await (await lib.get({ path: `/channels/presence-${room}/users` })).json();
  assert.deepEqual(users.users.map((u) => u.id).sort(), ['plain', user].sort());
});

test('API events carry no user_id, even on presence channels', async () => {
  const room = uniq('noid-');
  const echo = echoClient({ auth, user: 'noid' });
  const here = deferred('here');
  echo.join(room).here(here.resolve);
  await here;
  const ch = echo.connector.pusher.channel(`presence-${room}`);
  const got = once(ch, 'ev', 'event with metadata', undefined, { meta: true });
  await lib.trigger(`presence-${room}`, 'ev', { a: 1 });
  const { meta } = await got;
  assert.equal(meta?.user_id, undefined, JSON.stringify(meta));
});

test('an event just under 10 KB is delivered whole', async () => {
  const client = pusherClient();
  const name = uniq('big-ok-');
  const ch = client.subscribe(name);
  await subscribed(ch);
  const text = 'x'.repeat(10 * 1024 - 32);
  const got = once(ch, 'big', 'the 10 KB event');
  await lib.trigger(name, 'big', text);
  assert.equal((await got).length, text.length);
});

test('channel names: 164 characters work, 165 are refused', async () => {
  const client = pusherClient();
  await connected(client);
  const base = uniq('len-');
  const ok = base + 'a'.repeat(164 - base.length);
  const ch = client.subscribe(ok);
  await subscribed(ch);
  const got = once(ch, 'ev', 'event on a 164-char channel');
  await lib.trigger(ok, 'ev', {});
  await got;
  const tooLong = base + 'b'.repeat(165 - base.length);
  const err = await rejected(lib.post({ path: '/events', body: { name: 'ev', channels: [tooLong], data: '{}' } }));
  assert.equal(err.status, 400, String(err.body));
});

test('users endpoint on a non-presence channel -> 400; terminate for nobody -> 200', async () => {
  const err = await rejected(lib.get({ path: `/channels/${uniq('pub-')}/users` }));
  assert.equal(err.status, 400);
  const res = await lib.terminateUserConnections(uniq('nobody-'));
  assert.equal(res.status, 200);
});

test('Echo listenToAll sees every event of a channel with its name', async () => {
  const echo = echoClient();
  const name = uniq('all-');
  const seen = [];
  const ch = echo.channel(name).listenToAll((event, data) => seen.push([event, data]));
  await subscribed(ch);
  await lib.trigger(name, 'App\\Events\\One', { n: 1 });
  await lib.trigger(name, 'Two', { n: 2 });
  await waitUntil(() => seen.length === 2, `two events (got ${JSON.stringify(seen)})`);
  assert.deepEqual(seen, [
    ['One', { n: 1 }],
    ['.Two', { n: 2 }],
  ]);
});

test('Laravel integer user ids in presence channel_data ({"user_id": 42})', async () => {
  const room = uniq('int-ids-');
  const [u1, u2] = [String(1000 + Math.floor(Math.random() * 1e6)), String(2000000 + Math.floor(Math.random() * 1e6))];
  const a = echoClient({ auth, user: u1 });
  const joined = [];
  const left = [];
  const ha = deferred('here for the first integer user');
  a.join(room).here(ha.resolve).joining((m) => joined.push(m)).leaving((m) => left.push(m));
  assert.deepEqual(await ha, [{ name: `User ${u1}` }]);
  const pa = a.connector.pusher.channel(`presence-${room}`);
  assert.equal(String(pa.members.me?.id), u1, JSON.stringify(pa.members.me));
  const b = echoClient({ auth, user: u2 });
  const hb = deferred('here for the second integer user');
  b.join(room).here(hb.resolve);
  assert.equal((await hb).length, 2);
  await waitUntil(() => joined.length === 1, 'joining');
  const users = await (await lib.get({ path: `/channels/presence-${room}/users` })).json();
  assert.deepEqual(users.users.map((u) => String(u.id)).sort(), [u1, u2].sort());
  // whisper on presence carries the user id
  const got = deferred('whisper from an integer user');
  pa.bind('client-hi', (data, meta) => got.resolve(meta));
  b.join(room).whisper('hi', {});
  assert.equal(String((await got)?.user_id), u2);
  b.leave(room);
  await waitUntil(() => left.length === 1, 'leaving');
  assert.equal(pa.members.count, 1);
});

test('presence user_info as PHP sends it: [] for an empty array, or none at all', async () => {
  const room = uniq('php-info-');
  const [u1, u2] = [uniq('listinfo-'), uniq('noinfo-')];
  const a = echoClient({ auth, user: u1 });
  const ha = deferred('here for user_info []');
  const joined = [];
  a.join(room).here(ha.resolve).joining((m) => joined.push(m));
  assert.deepEqual(await ha, [[]]);
  const b = echoClient({ auth, user: u2 });
  const hb = deferred('here for no user_info');
  b.join(room).here(hb.resolve);
  const members = await hb;
  assert.equal(members.length, 2, JSON.stringify(members));
  await waitUntil(() => joined.length === 1, 'joining for a member without user_info');
  const pb = b.connector.pusher.channel(`presence-${room}`);
  assert.equal(pb.members.me.id, u2);
});
