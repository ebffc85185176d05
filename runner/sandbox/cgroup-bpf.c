/* cgroup-bpf.c: device control on cgroup v2, a BPF_PROG_TYPE_CGROUP_DEVICE
 * program attached to the job's group (v2 has no devices controller).
 *
 * The program allows the same character devices as v1's devices.allow list
 * (cgroup-v1.c) plus the assigned GPUs, and denies every other device
 * (block devices included), for every access (read, write, mknod).  It is
 * a straight list of compares, built here by hand as runc and crun do:
 *
 *   r2 = ctx->access_type & 0xffff   (BPF_DEVCG_DEV_CHAR / _BLOCK)
 *   r3 = ctx->major;  r4 = ctx->minor
 *   per rule: if r2 != type goto next; if r3 != major goto next;
 *             [if r4 != minor goto next;]  r0 = 1; exit
 *   r0 = 0; exit
 *
 * The attachment holds the program: it lives as long as the group. */
#include "runner/sandbox/cgroup.h"
#include "common/err.h"
#include "common/util.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/bpf.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#define INSN(c, d, s, o, i)                                                    \
	((struct bpf_insn){.code = (c),                                        \
	                   .dst_reg = (d),                                     \
	                   .src_reg = (s),                                     \
	                   .off = (o),                                         \
	                   .imm = (i)})
#define LDX_W(d, s, off)   INSN(BPF_LDX | BPF_MEM | BPF_W, d, s, off, 0)
#define AND_IMM(d, i)      INSN(BPF_ALU64 | BPF_AND | BPF_K, d, 0, 0, i)
#define MOV_IMM(d, i)      INSN(BPF_ALU64 | BPF_MOV | BPF_K, d, 0, 0, i)
#define JNE_IMM(d, i, off) INSN(BPF_JMP | BPF_JNE | BPF_K, d, 0, off, i)
#define EXIT()             INSN(BPF_JMP | BPF_EXIT, 0, 0, 0, 0)

/* One allowed device: a character device, minor -1 for any. */
struct dev_rule {
	int major, minor;
};

/* null, zero, full, random, urandom, tty, console, ptmx, pts (136:*):
 * the v1 list (cgroup-v1.c). */
static const struct dev_rule base_rules[] = {
    {1, 3}, {1, 5}, {1, 7}, {1, 8}, {1, 9}, {5, 0}, {5, 1}, {5, 2}, {136, -1}};

/* The program for rules; *n instructions (heap). */
static struct bpf_insn *build(const struct dev_rule *r, size_t nr, size_t *n)
{
	struct bpf_insn *p = xcalloc(5 + nr * 6, sizeof(*p));
	size_t i = 0;

	p[i++] = LDX_W(BPF_REG_2, BPF_REG_1,
	               offsetof(struct bpf_cgroup_dev_ctx, access_type));
	p[i++] = AND_IMM(BPF_REG_2, 0xffff);
	p[i++] = LDX_W(BPF_REG_3, BPF_REG_1,
	               offsetof(struct bpf_cgroup_dev_ctx, major));
	p[i++] = LDX_W(BPF_REG_4, BPF_REG_1,
	               offsetof(struct bpf_cgroup_dev_ctx, minor));
	for (size_t k = 0; k < nr; k++) {
		/* the jumps skip to the next rule: the rest of this one */
		int len = r[k].minor >= 0 ? 5 : 4;
		p[i++] = JNE_IMM(BPF_REG_2, BPF_DEVCG_DEV_CHAR, len - 1);
		p[i++] = JNE_IMM(BPF_REG_3, r[k].major, len - 2);
		if (r[k].minor >= 0)
			p[i++] = JNE_IMM(BPF_REG_4, r[k].minor, 2);
		p[i++] = MOV_IMM(BPF_REG_0, 1);
		p[i++] = EXIT();
	}
	p[i++] = MOV_IMM(BPF_REG_0, 0);
	p[i++] = EXIT();
	*n = i;
	return p;
}

static long sys_bpf(int cmd, union bpf_attr *attr)
{
	return syscall(SYS_bpf, cmd, attr, sizeof(*attr));
}

int cgroup_v2_devices(struct job_cgroup *cg, const struct cgroup_limits *l,
                      struct err *e)
{
	size_t nb = sizeof(base_rules) / sizeof(base_rules[0]);
	struct dev_rule *rules = xcalloc(nb + l->ngpus + 3, sizeof(*rules));
	size_t nr = 0, ninsn;
	struct bpf_insn *prog;
	char log[4096] = "";
	union bpf_attr attr;
	int pfd, cfd, rc = 0, uvm;
	char *dir;

	memcpy(rules, base_rules, sizeof(base_rules));
	nr = nb;
	/* NVIDIA: /dev/nvidia<minor> (195), nvidiactl (195:255),
	 * nvidia-modeset (195:254), nvidia-uvm (dynamic major). */
	for (size_t i = 0; i < l->ngpus; i++)
		rules[nr++] = (struct dev_rule){195, l->gpus[i]};
	if (l->ngpus > 0) {
		rules[nr++] = (struct dev_rule){195, 255};
		rules[nr++] = (struct dev_rule){195, 254};
		if ((uvm = cgroup_char_major("nvidia-uvm")) > 0)
			rules[nr++] = (struct dev_rule){uvm, -1};
	}
	prog = build(rules, nr, &ninsn);
	free(rules);

	memset(&attr, 0, sizeof(attr));
	attr.prog_type = BPF_PROG_TYPE_CGROUP_DEVICE;
	attr.insns = (uint64_t)(uintptr_t)prog;
	attr.insn_cnt = (uint32_t)ninsn;
	attr.license = (uint64_t)(uintptr_t) "Apache-2.0";
	attr.log_buf = (uint64_t)(uintptr_t)log;
	attr.log_size = sizeof(log);
	attr.log_level = 1;
	pfd = (int)sys_bpf(BPF_PROG_LOAD, &attr);
	if (pfd < 0 && errno == ENOSPC) { /* log too small: load without */
		attr.log_buf = 0;
		attr.log_size = 0;
		attr.log_level = 0;
		pfd = (int)sys_bpf(BPF_PROG_LOAD, &attr);
	}
	free(prog);
	if (pfd < 0) {
		log[sizeof(log) - 1] = '\0';
		return err_sys(e, TERR_UNSUPP,
		               "load the cgroup device program%s%.200s",
		               log[0] ? ": " : "", log);
	}
	dir = cgroup_job_dir(cg, NULL);
	cfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (cfd < 0) {
		rc = err_sys(e, TERR_IO, "open %s", dir);
	} else {
		memset(&attr, 0, sizeof(attr));
		attr.target_fd = (uint32_t)cfd;
		attr.attach_bpf_fd = (uint32_t)pfd;
		attr.attach_type = BPF_CGROUP_DEVICE;
		/* The group may be reused after a crash: replace what a
		 * previous runner attached rather than stack on it. */
		attr.attach_flags = 0;
		if (sys_bpf(BPF_PROG_ATTACH, &attr) < 0)
			rc = err_sys(e, TERR_UNSUPP,
			             "attach the device program to %s", dir);
		close(cfd);
	}
	close(pfd);
	free(dir);
	return rc;
}
