"""A preemption notice on one node of a multi-node job checkpoints every
rank and requeues the gang without counting it (docs/multi-node.md,
docs/checkpointing.md).  Real workspace, two real agents on loopback."""
import os
import time

from harness.common import tmpdir, wait_until
from harness.life import attempt

# every rank: a checkpoint at once, then wait to be stopped; a resumed
# gang ends at once
SCRIPT = r'''
echo "start node=$NODE_RANK attempt=$TETHER_ATTEMPT resume=${TETHER_RESUME:-0} ckpts=$(ls "$TETHER_CHECKPOINTS" | tr '\n' ' ')"
if [ -n "$TETHER_RESUME" ]; then exit 0; fi
echo "node $NODE_RANK" > "$TETHER_CHECKPOINTS/ck-node$NODE_RANK"
echo saved
while :; do sleep 0.1; done
'''


def _log(ws, jid, att):
    st, _, body = ws.api("GET", f"/api/v1/jobs/{jid}/log?attempt={att}")
    assert st == 200, body
    return body.decode()


def test_a_notice_on_one_node_checkpoints_every_rank_and_requeues_the_gang(
        workspace, agent_factory):
    notice = os.path.join(tmpdir("tether-notice-"), "evicted")
    tag = f"{os.getpid()}-{time.time()}"
    # preempt_poll 200ms (default 1s): the notice is seen at once
    spot = agent_factory(machine_id=f"pre-{tag}-0", preempt_file=notice,
                         preempt_poll="200ms").start()
    other = agent_factory(machine_id=f"pre-{tag}-1").start()
    jid = workspace.submit(name="gang-spot", command=["sh", "-c", SCRIPT],
                           nodes=2, retries=0, checkpoint={"grace": "2s"})

    def saved():
        j = workspace.job(jid)
        return len(j["attempts"]) == 2 and all(
            "saved" in _log(workspace, jid, a["attempt"])
            for a in j["attempts"])
    wait_until(saved, 60, what="both ranks to save a checkpoint")
    first = {a["attempt"] for a in workspace.job(jid)["attempts"]}
    open(notice, "w").close()
    spot.wait_exit(60)  # drained: its rank reported, nothing left
    wait_until(lambda: all(attempt(workspace, jid, n)["state"] not in
                           ("assigned", "running", "cancelling")
                           for n in first), 30,
               what="the other rank to stop")
    for n in first:
        a = attempt(workspace, jid, n)
        # the rank on the node without a notice was stopped as preempted
        # too, so it checkpointed
        assert a["reason"] == "preempted", a
        assert a["checkpoint"] and a["checkpoint"]["size"] > 0, a
    j = workspace.job(jid)
    assert j["state"] == "queued", j  # requeued though retries is 0
    assert j["checkpoint"]["attempt"] in first, j

    os.unlink(notice)
    spot.start()
    wait_until(lambda: workspace.job(jid)["state"] not in
               ("queued", "assigned", "running"), 60, what="the gang")
    j = workspace.job(jid)
    assert j["state"] == "succeeded", (j, spot.output()[-3000:])
    again = [a for a in j["attempts"] if a["attempt"] not in first]
    assert len(again) == 2, j
    for a in again:
        log = _log(workspace, jid, a["attempt"])
        assert "resume=1 ckpts=ck-node" in log, log
    assert other.alive()
