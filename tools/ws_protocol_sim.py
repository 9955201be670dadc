#!/usr/bin/env python3
# ws_protocol_sim.py — a model of v16's ring protocol (core/cuda/gqs_ws.h) run under random interleavings of
# the producer and the consumers: checks that it never deadlocks, that a consumer's release of slot k never
# arrives before slot k - NS's phase has completed (mbarrier arrivals count toward the pending phase), and
# that no slot is refilled while a consumer reads it. 300 random cases (rings of 2-23 slots, 1-31 consumers,
# rows of 0-40 blocks that fit the ring less a slot). `python3 tools/ws_protocol_sim.py` prints "bad 0".
# Why: the first v16 build deadlocked on the GPU (a consumer waited for every fill up to a row far ahead
# before releasing any slot); this model finds that version's deadlock in 114 of the 300 cases.
import random, sys
FULL, SHORT = 896, 224
def run(rows, NS, SB, C, seed):
    rnd = random.Random(seed)
    # rows: list of (nf, ns); stream offsets contiguous, 16-aligned
    off = []; o = 0
    for nf, ns in rows:
        off.append(o); o += (nf*FULL + ns*SHORT + 15)//16*16
    L = o; nsl = (L + SB - 1)//SB
    filled = [False]*nsl; rel = [0]*nsl
    nxt = [0]
    pk = [0]  # producer next slot
    # consumer generator
    def consumer(c):
        ready = -1; relc = 0
        def wait_to(k):
            nonlocal ready
            while ready < k:
                while not filled[ready+1]: yield 'wait'
                ready += 1
        def release_below(k):
            nonlocal relc
            while relc < k:
                yield from wait_to(relc)
                q = relc
                if q >= NS: assert rel[q-NS] == C, "arrival before earlier phase completed"
                rel[q] += 1; assert rel[q] <= C
                relc += 1
        while True:
            r = nxt[0]; nxt[0] += 1
            if r >= len(rows): break
            nf, ns = rows[r]
            for t in range(nf+ns):
                fr = t < nf
                o = off[r] + (t*FULL if fr else nf*FULL + (t-nf)*SHORT)
                sz = FULL if fr else SHORT
                yield from release_below(o//SB)
                yield from wait_to((o+sz-1)//SB)
                # reading slots o//SB .. end: they must hold this data (not refilled)
                for k in range(o//SB, (o+sz-1)//SB+1):
                    assert filled[k] and (k+NS >= nsl or not filled[k+NS]), "slot overwritten while read"
                yield 'work'
        yield from release_below(nsl)
    def producer():
        for k in range(nsl):
            if k >= NS:
                while rel[k-NS] < C: yield 'wait'
            filled[k] = True
            yield 'work'
    agents = [producer()] + [consumer(c) for c in range(C)]
    alive = list(range(len(agents))); stuck = 0
    while alive:
        i = rnd.choice(alive)
        try:
            s = next(agents[i])
            stuck = stuck + 1 if s == 'wait' else 0
        except StopIteration:
            alive.remove(i); stuck = 0
        if stuck > 200000: return 'DEADLOCK'
    assert all(x == C for x in rel), rel
    return 'ok'
bad = 0
for seed in range(300):
    rnd = random.Random(seed)
    NS = rnd.choice([2,3,4,6,23]); SB = rnd.choice([1024,2048,8192])
    C = rnd.choice([1,2,3,7,31])
    maxrow = NS*SB - SB
    rows = []
    for _ in range(rnd.randint(0, 80)):
        while True:
            nb = rnd.choice([0,0,1,2,3,4,5,8,13,16, rnd.randint(0,40)])
            nf, ns = nb//4, nb%4
            if nf*FULL + ns*SHORT <= maxrow: break
        rows.append((nf, ns))
    res = run(rows, NS, SB, C, seed)
    if res != 'ok': bad += 1; print(seed, NS, SB, C, len(rows), res)
print("bad", bad)
