"""Test harness: start and stop real peers (workspace, agent, sshd, dockerd,
Slurm) on loopback with temporary directories.  Every helper waits until its
service answers and kills what it started, by pid, at exit."""
