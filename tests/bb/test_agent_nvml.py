"""The agent's one NVML loader (agent/gpu-nvml.c) against a stand-in
libnvidia-ml.so.1 built here: the GPU inventory the agent registers with
(capacity_gpus) and `tether-agent doctor`'s gpu line read the same library
the same way; a library whose NVML does not start gives no GPUs and a
warning.  (This machine has no NVIDIA driver: the real library is tested
on GPU machines; the stand-in has the eight functions the loader needs.)"""
import os
import subprocess

import pytest

from harness.agent import Agent
from harness.common import tmpdir

FAKE_NVML = r"""
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
struct mem { unsigned long long total, free, used; };
int nvmlInit_v2(void) { return getenv("FAKE_NVML_FAIL") ? 999 : 0; }
int nvmlShutdown(void) { return 0; }
int nvmlDeviceGetCount_v2(unsigned int *n) { *n = 2; return 0; }
int nvmlSystemGetDriverVersion(char *b, unsigned int n)
{ snprintf(b, n, "535.99.01"); return 0; }
int nvmlDeviceGetHandleByIndex_v2(unsigned int i, void **d)
{ *d = (void *)(uintptr_t)(i + 1); return 0; }
int nvmlDeviceGetName(void *d, char *b, unsigned int n)
{ snprintf(b, n, "Fake H100 %d", (int)(uintptr_t)d); return 0; }
int nvmlDeviceGetUUID(void *d, char *b, unsigned int n)
{ snprintf(b, n, "GPU-fake-%d", (int)(uintptr_t)d); return 0; }
int nvmlDeviceGetMemoryInfo(void *d, struct mem *m)
{ m->total = 80ULL << 30; m->free = m->total; m->used = 0; return 0; }
"""


@pytest.fixture(scope="module")
def fake_nvml():
    d = tmpdir("tether-nvml-")
    src = os.path.join(d, "nvml.c")
    with open(src, "w") as f:
        f.write(FAKE_NVML)
    subprocess.run(["cc", "-shared", "-fPIC", "-o",
                    os.path.join(d, "libnvidia-ml.so.1"), src], check=True)
    return d


def _doctor_gpu(ag):
    r = ag.cmd("doctor", check=False, timeout=120)
    for line in r.stdout.splitlines():
        parts = line.split(None, 2)
        if len(parts) == 3 and parts[1] == "gpu":
            return parts[0], parts[2]
    raise AssertionError("no gpu line:\n" + r.stdout + r.stderr)


def test_inventory_and_doctor_read_one_loader(workspace, fake_nvml, monkeypatch):
    monkeypatch.setenv("LD_LIBRARY_PATH", fake_nvml)
    ag = Agent(workspace)
    assert _doctor_gpu(ag) == ("ok", "NVIDIA driver 535.99.01, 2 GPU(s)")
    ag.start()
    try:
        st, _, agents = workspace.api("GET", "/api/v1/agents")
        mine = [x for x in agents["agents"] if x["name"] == ag.name][0]
        gpus = mine["capacity"]["gpus"]
        assert [(g["index"], g["model"], g["uuid"], g["memory"]) for g in gpus] == [
            (0, "Fake H100 1", "GPU-fake-1", 80 << 30),
            (1, "Fake H100 2", "GPU-fake-2", 80 << 30)], gpus
    finally:
        ag.stop()


def test_nvml_that_does_not_start(workspace, fake_nvml, monkeypatch):
    monkeypatch.setenv("LD_LIBRARY_PATH", fake_nvml)
    monkeypatch.setenv("FAKE_NVML_FAIL", "1")
    ag = Agent(workspace)
    status, text = _doctor_gpu(ag)
    assert status == "warn" and "NVML does not start" in text, text
    ag.start()
    try:
        st, _, agents = workspace.api("GET", "/api/v1/agents")
        mine = [x for x in agents["agents"] if x["name"] == ag.name][0]
        assert mine["capacity"].get("gpus", []) == []
        assert "NVML did not start" in ag.output()
    finally:
        ag.stop()
