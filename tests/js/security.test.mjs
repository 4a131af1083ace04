// What a hostile or broken client tries with a real pusher-js connection: whispering into
// channels it was refused or never joined, subscribing twice, unsubscribing strangers'
// channels. The gateway must not relay, count or leak.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  APPS,
  connected,
  deferred,
  echoClient,
  pusherClient,
  roundTrip,
  serverLib,
  sleep,
  startAuthServer,
  subscribed,
  uniq,
  waitUntil,
} from './helpers.mjs';

const ERROR_APP = APPS.error;
const auth = await startAuthServer(ERROR_APP);
const lib = serverLib(ERROR_APP);

function raw(client, event, data, channel) {
  client.send_event(event, data, channel);
}

async function info(channel, attrs = 'subscription_count') {
  return (await lib.get({ path: `/channels/${channel}`, params: { info: attrs } })).json();
}

test('error mode: no whisper into a channel whose subscription was refused', async () => {
  const room = `private-${uniq('refused-')}`;
  const victim = pusherClient({ app: ERROR_APP, auth, user: 'victim' });
  const vch = victim.subscribe(room);
  await subscribed(vch);
  let heard = 0;
  vch.bind('client-evil', () => (heard += 1));
  const attacker = pusherClient({ app: ERROR_APP, auth, user: 'attacker' });
  await connected(attacker);
  // A forged subscription (refused, connection kept in error mode), then a client event.
  const refused = deferred('subscription_error');
  attacker.connection.bind('message', (m) => {
    if (m.event === 'pusher:subscription_error' && m.channel === room) refused.resolve(m);
  });
  raw(attacker, 'pusher:subscribe', { channel: room, auth: `${ERROR_APP.key}:${'0'.repeat(64)}` });
  await refused;
  raw(attacker, 'client-evil', { x: 1 }, room);
  await sleep(300);
  assert.equal(heard, 0, 'a refused subscriber whispered into the channel');
  assert.equal((await info(room)).subscription_count, 1, 'the refused subscription was counted');
  assert.equal(attacker.connection.state, 'connected');
});

test('no whisper into a channel never subscribed', async () => {
  const room = `private-${uniq('never-')}`;
  const member = pusherClient({ app: ERROR_APP, auth, user: 'm' });
  const ch = member.subscribe(room);
  await subscribed(ch);
  let heard = 0;
  ch.bind('client-x', () => (heard += 1));
  const outsider = pusherClient({ app: ERROR_APP, auth, user: 'o' });
  await connected(outsider);
  raw(outsider, 'client-x', {}, room);
  await waitUntil(() => outsider.log.codes.includes(4301), `4301 (got ${JSON.stringify(outsider.log.codes)})`);
  await sleep(200);
  assert.equal(heard, 0);
});

test('no whisper after unsubscribing', async () => {
  const room = `private-${uniq('left-')}`;
  const a = pusherClient({ app: ERROR_APP, auth, user: 'a' });
  const b = pusherClient({ app: ERROR_APP, auth, user: 'b' });
  const [ca, cb] = [a.subscribe(room), b.subscribe(room)];
  await Promise.all([subscribed(ca), subscribed(cb)]);
  let heard = 0;
  cb.bind('client-late', () => (heard += 1));
  a.unsubscribe(room);
  await sleep(100);
  raw(a, 'client-late', {}, room);
  await sleep(300);
  assert.equal(heard, 0);
});

test('subscribing twice to the same channel counts once; one unsubscribe leaves it', async () => {
  const name = uniq('twice-');
  const client = pusherClient({ app: ERROR_APP });
  const ch = client.subscribe(name);
  await subscribed(ch);
  raw(client, 'pusher:subscribe', { channel: name });
  await roundTrip(client);
  assert.equal((await info(name)).subscription_count, 1);
  client.unsubscribe(name);
  await roundTrip(client);
  assert.equal((await info(name)).occupied, false);
});

test('presence: subscribing twice from one connection is still one member, removed on unsubscribe', async () => {
  const room = uniq('twice-room-');
  const channel = `presence-${room}`;
  const watcher = echoClient({ app: ERROR_APP, auth, user: 'twice-watcher' });
  const here = deferred('here');
  const joined = [];
  const left = [];
  watcher.join(room).here(here.resolve).joining((m) => joined.push(m)).leaving((m) => left.push(m));
  await here;
  const client = pusherClient({ app: ERROR_APP, auth, user: 'twice' });
  const ch = client.subscribe(channel);
  await subscribed(ch);
  // Resend the same (validly signed) subscribe by hand.
  const signed = serverLib(ERROR_APP).authorizeChannel(client.connection.socket_id, channel, {
    user_id: 'twice',
    user_info: { name: 'User twice' },
  });
  raw(client, 'pusher:subscribe', { channel, auth: signed.auth, channel_data: signed.channel_data });
  await roundTrip(client);
  await sleep(200); // a member_added to the watcher would have arrived by now
  assert.equal(joined.length, 1, JSON.stringify(joined));
  const users = await (await lib.get({ path: `/channels/${channel}/users` })).json();
  assert.deepEqual(users.users.map((u) => u.id).sort(), ['twice', 'twice-watcher']);
  assert.equal((await info(channel, 'user_count,subscription_count')).subscription_count, 2);
  client.unsubscribe(channel);
  await waitUntil(() => left.length === 1, 'leaving after one unsubscribe');
});

test('unsubscribing a channel one never joined changes nothing for its members', async () => {
  const name = uniq('strangers-');
  const member = pusherClient({ app: ERROR_APP });
  const ch = member.subscribe(name);
  await subscribed(ch);
  const stranger = pusherClient({ app: ERROR_APP });
  await connected(stranger);
  raw(stranger, 'pusher:unsubscribe', { channel: name });
  await roundTrip(stranger);
  assert.equal((await info(name)).subscription_count, 1);
  const got = deferred('event still delivered to the member');
  ch.bind('still', got.resolve);
  await lib.trigger(name, 'still', {});
  await got;
});

test('a presence channel_data naming another user than the signature covers is refused', async () => {
  const room = `presence-${uniq('spoof-')}`;
  const client = pusherClient({ app: ERROR_APP, auth, user: 'honest' });
  await connected(client);
  const signed = serverLib(ERROR_APP).authorizeChannel(client.connection.socket_id, room, {
    user_id: 'honest',
  });
  const refused = deferred('subscription_error for tampered channel_data');
  client.connection.bind('message', (m) => {
    if (m.channel === room && m.event === 'pusher:subscription_error') refused.resolve(m.data);
  });
  raw(client, 'pusher:subscribe', { channel: room, auth: signed.auth, channel_data: JSON.stringify({ user_id: 'admin' }) });
  const data = await refused;
  assert.equal(data.type, 'AuthError', JSON.stringify(data));
  assert.equal((await info(room, 'user_count')).user_count ?? 0, 0);
});

test('a signature for one socket is useless on another (replayed auth)', async () => {
  const room = `private-${uniq('replay-')}`;
  const a = pusherClient({ app: ERROR_APP, auth, user: 'ra' });
  const b = pusherClient({ app: ERROR_APP, auth, user: 'rb' });
  await Promise.all([connected(a), connected(b)]);
  const signedForA = serverLib(ERROR_APP).authorizeChannel(a.connection.socket_id, room);
  const refused = deferred('subscription_error for a replayed signature');
  b.connection.bind('message', (m) => {
    if (m.channel === room && m.event === 'pusher:subscription_error') refused.resolve(m.data);
  });
  raw(b, 'pusher:subscribe', { channel: room, auth: signedForA.auth });
  await refused;
});
