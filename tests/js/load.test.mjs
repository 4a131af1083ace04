// Many real clients at once: simultaneous presence joins must converge to the same member
// list everywhere, and a fan-out must reach every subscriber exactly once.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { connected, deferred, echoClient, pusherClient, serverLib, sleep, startAuthServer, subscribed, uniq, waitUntil } from './helpers.mjs';

const auth = await startAuthServer();
const lib = serverLib();

test('60 users join one presence channel at once: every client ends with 60 members', async () => {
  const room = uniq('crowd-');
  const N = 60;
  const echos = Array.from({ length: N }, (_, i) => echoClient({ auth, user: `c${i}` }));
  const heres = echos.map((e) => {
    const d = deferred('here', 15000);
    e.join(room).here(d.resolve);
    return d;
  });
  await Promise.all(heres);
  const counts = () => echos.map((e) => e.connector.pusher.channel(`presence-${room}`).members.count);
  await waitUntil(() => counts().every((n) => n === N), `all clients to count ${N} (got ${counts().join(',')})`, 10000);
  // Half leave at once: the rest converge to N/2.
  for (const e of echos.slice(0, N / 2)) e.disconnect();
  const rest = echos.slice(N / 2);
  const restCounts = () => rest.map((e) => e.connector.pusher.channel(`presence-${room}`).members.count);
  await waitUntil(() => restCounts().every((n) => n === N / 2), `the rest to count ${N / 2} (got ${restCounts().join(',')})`, 10000);
  const users = await (await lib.get({ path: `/channels/presence-${room}/users` })).json();
  assert.equal(users.users.length, N / 2);
});

test('fan-out: 150 subscribers, 20 events, each delivered exactly once and in order', async () => {
  const name = uniq('fan-');
  const N = 150;
  const E = 20;
  const clients = Array.from({ length: N }, () => pusherClient());
  const channels = clients.map((c) => c.subscribe(name));
  await Promise.all(channels.map((ch) => subscribed(ch)));
  const seen = channels.map(() => []);
  channels.forEach((ch, i) => ch.bind('n', (d) => seen[i].push(d.i)));
  for (let i = 0; i < E; i += 1) await lib.trigger(name, 'n', { i });
  const total = () => seen.reduce((s, l) => s + l.length, 0);
  await waitUntil(() => total() >= N * E, `${N * E} deliveries (got ${total()})`, 10000);
  await sleep(200);
  const want = Array.from({ length: E }, (_, i) => i);
  for (const l of seen) assert.deepEqual(l, want);
});
