// The HTTP API through the official Node server library (as a Laravel/Node backend calls
// it), checked against what pusher-js clients see; plus client-event limits and the
// watchlist, which the server side drives.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  APPS,
  CLOSE_APP,
  connected,
  deferred,
  echoClient,
  once,
  pusherClient,
  roundTrip,
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

test('trigger with info returns subscription_count and user_count per channel', async () => {
  const room = uniq('info-');
  const a = echoClient({ auth, user: 'i1' });
  const b = echoClient({ auth, user: 'i2' });
  const ha = deferred('here a');
  const hb = deferred('here b');
  a.join(room).here(ha.resolve);
  b.join(room).here(hb.resolve);
  await Promise.all([ha, hb]);
  const res = await lib.trigger(`presence-${room}`, 'ev', {}, { info: 'user_count,subscription_count' });
  const body = await res.json();
  assert.deepEqual(body, { channels: { [`presence-${room}`]: { user_count: 2, subscription_count: 2 } } });
});

test('triggerBatch delivers each event to its channel', async () => {
  const client = pusherClient();
  const [n1, n2] = [uniq('batch1-'), uniq('batch2-')];
  const c1 = client.subscribe(n1);
  const c2 = client.subscribe(n2);
  await Promise.all([subscribed(c1), subscribed(c2)]);
  const g1 = once(c1, 'one', 'batch event 1');
  const g2 = once(c2, 'two', 'batch event 2');
  const res = await lib.triggerBatch([
    { channel: n1, name: 'one', data: { n: 1 } },
    { channel: n2, name: 'two', data: { n: 2 } },
  ]);
  assert.equal(res.status, 200);
  assert.deepEqual(await g1, { n: 1 });
  assert.deepEqual(await g2, { n: 2 });
});

test('GET /channels lists occupied channels by prefix, with user_count for presence', async () => {
  const room = uniq('list-');
  const echo = echoClient({ auth, user: 'lister' });
  const here = deferred('here');
  echo.join(room).here(here.resolve);
  await here;
  const res = await lib.get({ path: '/channels', params: { filter_by_prefix: 'presence-list-', info: 'user_count' } });
  const body = await res.json();
  assert.deepEqual(body.channels[`presence-${room}`], { user_count: 1 });
  const plain = await (await lib.get({ path: '/channels', params: { filter_by_prefix: 'presence-' } })).json();
  assert.ok(`presence-${room}` in plain.channels);
  // user_count needs a presence- prefix
  const err = await rejected(lib.get({ path: '/channels', params: { info: 'user_count' } }));
  assert.equal(err.status, 400);
});

test('GET /channels/{name}: occupied and subscription_count follow real subscriptions', async () => {
  const name = uniq('count-');
  const before = await (await lib.get({ path: `/channels/${name}`, params: { info: 'subscription_count' } })).json();
  assert.equal(before.occupied, false);
  const a = pusherClient();
  const b = pusherClient();
  await Promise.all([subscribed(a.subscribe(name)), subscribed(b.subscribe(name))]);
  const during = await (await lib.get({ path: `/channels/${name}`, params: { info: 'subscription_count' } })).json();
  assert.deepEqual(during, { occupied: true, subscription_count: 2 });
  b.unsubscribe(name);
  await roundTrip(b);
  const after = await (await lib.get({ path: `/channels/${name}`, params: { info: 'subscription_count' } })).json();
  assert.deepEqual(after, { occupied: true, subscription_count: 1 });
});

test('an event over 10 KB is refused with 413; a wrong secret with 401', async () => {
  const big = await rejected(lib.trigger(uniq('big-'), 'ev', 'x'.repeat(11 * 1024)));
  assert.equal(big.status, 413, String(big.body));
  const forged = serverLib(CLOSE_APP, { secret: 'wrong-secret' });
  const bad = await rejected(forged.trigger(uniq('x-'), 'ev', {}));
  assert.equal(bad.status, 401, String(bad.body));
});

test('client events: over 10 per second the sender gets 4301 and stays connected', async () => {
  const room = uniq('flood-');
  const a = echoClient({ auth, user: 'f1' });
  const b = echoClient({ auth, user: 'f2' });
  const chA = a.private(room);
  const chB = b.private(room);
  let heard = 0;
  chB.listenForWhisper('spam', () => {
    heard += 1;
  });
  await Promise.all([subscribed(chA), subscribed(chB)]);
  const pa = a.connector.pusher;
  for (let i = 0; i < 20; i += 1) chA.whisper('spam', { i });
  await waitUntil(() => pa.log.codes.includes(4301), `error 4301 (got ${JSON.stringify(pa.log.codes)})`);
  await sleep(300);
  assert.ok(heard >= 9 && heard <= 12, `relayed ${heard} of 20`);
  assert.equal(pa.connection.state, 'connected');
});

test('client events on an app without them: 4301, nothing relayed, still connected', { skip: !APPS.deadline }, async () => {
  const app = APPS.deadline; // client_events = false
  const hosts = await startAuthServer(app);
  const a = echoClient({ app, auth: hosts, user: 'n1' });
  const b = echoClient({ app, auth: hosts, user: 'n2' });
  const room = uniq('nowhisper-');
  const chA = a.private(room);
  const chB = b.private(room);
  let heard = 0;
  chB.listenForWhisper('x', () => {
    heard += 1;
  });
  await Promise.all([subscribed(chA), subscribed(chB)]);
  chA.whisper('x', {});
  const pa = a.connector.pusher;
  await waitUntil(() => pa.log.codes.includes(4301), `error 4301 (got ${JSON.stringify(pa.log.codes)})`);
  await sleep(200);
  assert.equal(heard, 0);
  assert.equal(pa.connection.state, 'connected');
});

test('watchlist: online when a watched user signs in, offline when they leave', async () => {
  const [watcher, watched] = [uniq('watcher-'), uniq('watched-')];
  const w = pusherClient({ auth, user: watcher, watchlist: [watched] });
  const online = deferred('watchlist online');
  const offline = deferred('watchlist offline');
  w.user.watchlist.bind('online', (e) => online.resolve(e));
  w.user.watchlist.bind('offline', (e) => offline.resolve(e));
  w.signin();
  await waitUntil(() => w.user.user_data, 'watcher signin');
  const u = pusherClient({ auth, user: watched });
  u.signin();
  const on = await online;
  assert.deepEqual(on.user_ids, [watched]);
  u.disconnect();
  const off = await offline;
  assert.deepEqual(off.user_ids, [watched]);
});

test('watchlist: a watched user already online is reported right after signin', async () => {
  const [watcher, watched] = [uniq('watcher-'), uniq('watched-')];
  const u = pusherClient({ auth, user: watched });
  u.signin();
  await waitUntil(() => u.user.user_data, 'watched signin');
  const w = pusherClient({ auth, user: watcher, watchlist: [watched, uniq('nobody-')] });
  const online = deferred('watchlist online at signin');
  w.user.watchlist.bind('online', (e) => online.resolve(e));
  w.signin();
  assert.deepEqual((await online).user_ids, [watched]);
});

test('encrypted cache channel: the cached ciphertext is replayed and decrypted', async () => {
  const room = uniq('cache-vault-');
  await lib.trigger(`private-encrypted-${room}`, 'Balance', { eur: 12 });
  const echo = echoClient({ auth, user: 'vault' });
  const got = deferred('the cached, decrypted .Balance');
  echo.encryptedPrivate(room).listen('.Balance', got.resolve);
  assert.deepEqual(await got, { eur: 12 });
});

test('presence cache channel with Echo.join: members and the cached event', async () => {
  const room = uniq('cache-lobby-');
  await lib.trigger(`presence-${room}`, 'Topic', { t: 'hi' });
  const echo = echoClient({ auth, user: 'lobby' });
  const here = deferred('here');
  const got = deferred('the cached .Topic');
  echo.join(room).here(here.resolve).listen('.Topic', got.resolve);
  assert.deepEqual(await here, [{ name: 'User lobby' }]);
  assert.deepEqual(await got, { t: 'hi' });
});

test('Echo leave then join again: the others see leaving then joining', async () => {
  const room = uniq('again-');
  const a = echoClient({ auth, user: 'stay' });
  const joined = [];
  const left = [];
  const here = deferred('here');
  a.join(room).here(here.resolve).joining((m) => joined.push(m)).leaving((m) => left.push(m));
  await here;
  const b = echoClient({ auth, user: 'comeback' });
  const hb = deferred('here b');
  b.join(room).here(hb.resolve);
  await hb;
  await waitUntil(() => joined.length === 1, 'joining');
  b.leave(room);
  await waitUntil(() => left.length === 1, 'leaving');
  const hb2 = deferred('here b again');
  b.join(room).here(hb2.resolve);
  assert.equal((await hb2).length, 2);
  await waitUntil(() => joined.length === 2, 'joining again');
});

test('an invalid channel name is refused without dropping the connection', async () => {
  const client = pusherClient();
  await connected(client);
  const bad = 'bad channel name!';
  const err = deferred('an error for an invalid channel name');
  client.connection.bind('message', (m) => {
    if (m.event === 'pusher:subscription_error' || m.event === 'pusher:error') err.resolve(m);
  });
  client.send_event('pusher:subscribe', { channel: bad });
  await err;
  await sleep(200);
  assert.equal(client.connection.state, 'connected');
  // and the connection still works
  await subscribed(client.subscribe(uniq('after-bad-')));
});

test('presence full (max_presence_members=3): the 4th user gets .error(), a 2nd tab of a member still joins', async () => {
  const app = APPS.error;
  const errAuth = await startAuthServer(app);
  const room = uniq('full-');
  const members = [];
  for (const user of ['m1', 'm2', 'm3']) {
    const e = echoClient({ app, auth: errAuth, user });
    const here = deferred(`here for ${user}`);
    e.join(room).here(here.resolve);
    await here;
    members.push(e);
  }
  const fourth = echoClient({ app, auth: errAuth, user: 'm4' });
  const refused = deferred('.error() for the 4th member');
  fourth.join(room).error(refused.resolve);
  const e = await refused;
  assert.equal(e.status, 403, JSON.stringify(e));
  await sleep(200);
  assert.equal(fourth.connectionStatus(), 'connected');
  // m1 again (another tab): not a new member, so it fits.
  const tab = echoClient({ app, auth: errAuth, user: 'm1' });
  const here = deferred('here for m1 second tab');
  tab.join(room).here(here.resolve);
  assert.equal((await here).length, 3);
  assert.equal(members[1].connector.pusher.channel(`presence-${room}`).members.count, 3);
});

test('a full presence channel is not reported as an auth failure (no AuthError, no 4009)', async () => {
  // Were it an AuthError, an auth_failure="close" app would close the socket for it.
  const app = APPS.error;
  const errAuth = await startAuthServer(app);
  const room = uniq('full2-');
  for (const user of ['k1', 'k2', 'k3']) {
    const e = echoClient({ app, auth: errAuth, user });
    const here = deferred(`here for ${user}`);
    e.join(room).here(here.resolve);
    await here;
  }
  const client = pusherClient({ app, auth: errAuth, user: 'k4' });
  const ch = client.subscribe(`presence-${room}`);
  const err = deferred('subscription_error');
  ch.bind('pusher:subscription_error', err.resolve);
  const data = await err;
  assert.notEqual(data.type, 'AuthError', JSON.stringify(data));
  assert.ok(!client.log.codes.includes(4009));
});

test('client events on a public channel or over 10 KB are refused (4301), never relayed', async () => {
  const a = pusherClient({ auth, user: 'pc1' });
  const b = pusherClient({ auth, user: 'pc2' });
  const name = uniq('public-whisper-');
  const room = `private-${uniq('big-whisper-')}`;
  const [pa, pb, ra, rb] = [a.subscribe(name), b.subscribe(name), a.subscribe(room), b.subscribe(room)];
  await Promise.all([pa, pb, ra, rb].map((c) => subscribed(c)));
  let heard = 0;
  pb.bind('client-x', () => (heard += 1));
  rb.bind('client-big', () => (heard += 1));
  a.send_event('client-x', { y: 1 }, name);
  await waitUntil(() => a.log.codes.includes(4301), `4301 for a public channel (got ${JSON.stringify(a.log.codes)})`);
  const before = a.log.codes.length;
  ra.trigger('client-big', { blob: 'z'.repeat(11 * 1024) });
  await waitUntil(() => a.log.codes.length > before, `an error for an 11 KB client event (got ${JSON.stringify(a.log.codes)})`);
  await sleep(200);
  assert.equal(heard, 0);
  assert.equal(a.connection.state, 'connected');
});

test('cache_ttl (2 s on the error app): the cached event expires, then cache_miss', async () => {
  const app = APPS.error;
  const errLib = serverLib(app);
  const name = uniq('cache-ttl-');
  const early = pusherClient({ app });
  await connected(early); // connect first: the subscribe must come well within the TTL
  await errLib.trigger(name, 'ev', { fresh: true });
  assert.deepEqual(await once(early.subscribe(name), 'ev', 'the cached event within the TTL'), { fresh: true });
  await sleep(2600);
  const late = pusherClient({ app });
  const ch = late.subscribe(name);
  let replayed = false;
  ch.bind('ev', () => (replayed = true));
  await once(ch, 'pusher:cache_miss', 'cache_miss after the TTL', 4000);
  assert.equal(replayed, false);
});

test('disconnect and connect again: presence sees leaving then joining; the old socket is gone', async () => {
  const room = uniq('blip-');
  const watcher = echoClient({ auth, user: 'blip-watcher' });
  const joined = [];
  const left = [];
  const here = deferred('here');
  watcher.join(room).here(here.resolve).joining((m) => joined.push(m)).leaving((m) => left.push(m));
  await here;
  const flaky = pusherClient({ auth, user: 'blip' });
  const ch = flaky.subscribe(`presence-${room}`);
  await subscribed(ch);
  await waitUntil(() => joined.length === 1, 'joining');
  const firstId = flaky.connection.socket_id;
  flaky.disconnect();
  await waitUntil(() => left.length === 1, 'leaving after disconnect');
  flaky.connect();
  await waitUntil(() => joined.length === 2, 'joining after connect');
  assert.notEqual(flaky.connection.socket_id, firstId);
  assert.equal(ch.members.count, 2);
  const users = await (await lib.get({ path: `/channels/presence-${room}/users` })).json();
  assert.deepEqual(users.users.map((u) => u.id).sort(), ['blip', 'blip-watcher']);
});

test('triggerBatch with info, and socket_id exclusion inside a batch', async () => {
  const a = pusherClient();
  const b = pusherClient();
  const name = uniq('batch-info-');
  const [ca, cb] = [a.subscribe(name), b.subscribe(name)];
  await Promise.all([subscribed(ca), subscribed(cb)]);
  let aGot = 0;
  ca.bind('ev', () => (aGot += 1));
  const bGot = once(cb, 'ev', 'batch event for b');
  const res = await lib.triggerBatch([
    { channel: name, name: 'ev', data: { n: 1 }, socket_id: a.connection.socket_id, info: 'subscription_count' },
  ]);
  const body = await res.json();
  assert.deepEqual(body, { batch: [{ subscription_count: 2 }] });
  assert.deepEqual(await bGot, { n: 1 });
  await sleep(200);
  assert.equal(aGot, 0);
});
