"""Jobs do not leak into each other (issue 13, item 11), sandbox launcher,
agent + workspace end to end.

Scenario: job A leaves files in /tmp, /dev/shm, its work dir and
checkpoints dir, tries to write outside its work dir (/var/tmp, /home,
/etc, /opt, /tether), and starts background processes (setsid, nohup)
before it exits.  Job B then looks for all of it.
Pass criterion: A's writes outside its own directories failed and left no
file on the host; when A has ended no process of it is left on the host;
B sees none of A's files or processes."""
import os

from test_sec_job_escape import find_pids

OUTSIDE = ["/var/tmp", "/home", "/etc", "/opt", "/tether", "/usr/local"]

JOB_A = """
echo a > /tmp/leak-a; echo a > /dev/shm/leak-a
echo a > /tether/work/leak-a; echo a > /tether/checkpoints/leak-a
for d in %s; do (echo a > $d/leak-a) 2>/dev/null && echo "WROTE $d"; done
setsid sleep 3002.25 </dev/null >/dev/null 2>&1 &
nohup sleep 3003.25 </dev/null >/dev/null 2>&1 &
(trap '' HUP TERM; exec sleep 3004.25) </dev/null >/dev/null 2>&1 &
echo A-DONE
""" % " ".join(OUTSIDE)

JOB_B = """
for f in /tmp/leak-a /dev/shm/leak-a /tether/work/leak-a \
         /tether/checkpoints/leak-a %s; do
  [ -e "$f" ] && echo "SEEN $f"
done
for p in /proc/[0-9]*; do
  case "$(tr '\\0' ' ' < $p/cmdline 2>/dev/null)" in
    *300[234].25*) echo "SEEN process $p";;
  esac
done
echo B-DONE
""" % " ".join(d + "/leak-a" for d in OUTSIDE)


def test_job_a_leaves_nothing_for_job_b(workspace, agent_factory):
    ag = agent_factory().start()
    a = workspace.submit(name="leaker", command=["sh", "-c", JOB_A])
    ag.wait_job(a, "succeeded", timeout=60)
    log_a = ag.ws_log(a)
    assert b"A-DONE" in log_a and b"WROTE" not in log_a, log_a
    for marker in ("3002.25", "3003.25", "3004.25"):
        assert find_pids(marker) == [], marker
    for d in OUTSIDE + ["/tmp", "/dev/shm"]:
        assert not os.path.exists(os.path.join(d, "leak-a")), d
    b = workspace.submit(name="looker", command=["sh", "-c", JOB_B])
    ag.wait_job(b, "succeeded", timeout=60)
    log_b = ag.ws_log(b)
    assert b"B-DONE" in log_b and b"SEEN" not in log_b, log_b
