/* slurm-follow.c: follow a Slurm job from the head node.
 *
 * A thread copies the job's output file (written by slurmstepd on the shared
 * filesystem) into the out pipe, byte for byte, and asks scontrol how the
 * job is doing every poll_ms.  When Slurm reports a final state (or has
 * forgotten the job), it copies the rest of the file, closes the out pipe
 * and makes done_fd readable. */
#include "runner/slurm/slurm.h"
#include "common/err.h"
#include "common/fileio.h"
#include "common/log.h"
#include "common/util.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define FOLLOW_TICK_MS  100
#define FOLLOW_HURRY_MS 250

/* Write all of data to the non-blocking pipe, waiting while it is full;
 * false when the reader went away or we were told to stop. */
static bool pipe_put(struct slurm_job *j, const char *data, size_t len)
{
	while (len > 0) {
		ssize_t n = write(j->out_w, data, len);
		if (n > 0) {
			data += n;
			len -= (size_t)n;
			continue;
		}
		if (n < 0 && errno == EAGAIN) {
			struct pollfd p = {j->out_w, POLLOUT, 0};
			if (atomic_load(&j->stop))
				return false;
			poll(&p, 1, FOLLOW_TICK_MS);
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		return false;
	}
	return true;
}

/* Note where the job's bytes begin in the log (once, before the first). */
static void mark_log_start(struct slurm_job *j)
{
	struct stat st;

	if (j->log_start >= 0 || fstat(j->log_fd, &st) < 0)
		return;
	j->log_start = st.st_size;
	j->out_start = j->out_offset;
	slurm_json_save(j, NULL);
}

/* Copy new bytes of the output file into the pipe; false on a dead pipe. */
static bool pump(struct slurm_job *j, int *fd)
{
	char chunk[65536];
	ssize_t n;

	if (*fd < 0)
		*fd = slurm_open_job_file(j->out_file);
	if (*fd < 0)
		return true; /* not created yet */
	while ((n = pread(*fd, chunk, sizeof(chunk), j->out_offset)) > 0) {
		j->ran = true;
		mark_log_start(j);
		if (!pipe_put(j, chunk, (size_t)n))
			return false;
		j->out_offset += n;
	}
	return true;
}

/* Ask Slurm; true when the job is over (final state or forgotten). */
static bool job_over(struct slurm_job *j)
{
	struct slurm_info info;
	struct err e = {0};
	bool changed;

	if (slurm_info_query(j->job_id, &info, &e) < 0) {
		log_warn("slurm job %s: %s (will ask again)", j->job_id, e.msg);
		return false;
	}
	pthread_mutex_lock(&j->lock);
	changed = info.known != j->info.known ||
	          strcmp(info.state, j->info.state) != 0 ||
	          strcmp(info.reason, j->info.reason) != 0;
	if (info.known || !j->info.known)
		j->info = info;
	else
		j->info.known = false; /* keep the last state seen */
	pthread_mutex_unlock(&j->lock);
	if (changed)
		slurm_json_save(j, NULL);
	/* Opt-in: an sstat racing the job's end makes slurmstepd write "no
	 * task list created!" into the job's output (docs/slurm.md). */
	if (j->sstat && info.known && strcmp(info.state, "RUNNING") == 0 &&
	    access(j->exit_file, F_OK) != 0) {
		int64_t rss = slurm_sstat_maxrss(j->job_id);
		if (rss > j->peak_rss) {
			j->peak_rss = rss;
			slurm_json_save(j, NULL);
		}
	}
	if (info.known && slurm_state_phase(info.state) == SLURM_RUNNING)
		j->ran = true;
	/* held for a reason that never clears: seen twice in a row (a
	 * poll apart), so a passing state of the cluster is not taken for
	 * it; the runner then takes it out of the queue (collect) */
	if (info.known && slurm_state_phase(info.state) == SLURM_QUEUED &&
	    slurm_reason_hopeless(info.reason))
		j->stuck = ++j->hopeless_seen >= 2;
	else
		j->hopeless_seen = 0;
	return !info.known || j->stuck ||
	       slurm_state_phase(info.state) == SLURM_ENDED;
}

static void *follow_main(void *arg)
{
	struct slurm_job *j = arg;
	int64_t next_query = 0;
	bool exit_seen = false;
	int fd = -1;
	sigset_t block;

	sigfillset(&block);
	pthread_sigmask(SIG_BLOCK, &block, NULL);
	while (!atomic_load(&j->stop)) {
		int64_t now = now_mono_ms();
		if (!pump(j, &fd))
			break;
		if (!exit_seen && access(j->exit_file, F_OK) == 0) {
			exit_seen = true;
			next_query = 0;
		}
		if (atomic_load(&j->hurry) &&
		    next_query > now + FOLLOW_HURRY_MS)
			next_query = now + FOLLOW_HURRY_MS;
		if (now >= next_query) {
			if (job_over(j)) {
				pump(j, &fd);
				break;
			}
			next_query =
			    now + (atomic_load(&j->hurry) ? FOLLOW_HURRY_MS
			                                  : j->poll_ms);
		}
		poll(NULL, 0, FOLLOW_TICK_MS);
	}
	if (fd >= 0)
		close(fd);
	close(j->out_w);
	j->out_w = -1;
	if (write(j->done_w, "x", 1) < 0)
		log_warn_errno("slurm job %s: done pipe", j->job_id);
	return NULL;
}

int slurm_follow_start(struct slurm_job *j, int *out_fd, int *done_fd,
                       struct err *e)
{
	int po[2], pd[2];

	if (pipe2(po, O_CLOEXEC) < 0)
		return err_sys(e, TERR_IO, "slurm: pipe");
	if (pipe2(pd, O_CLOEXEC) < 0) {
		close(po[0]);
		close(po[1]);
		return err_sys(e, TERR_IO, "slurm: pipe");
	}
	fcntl(po[1], F_SETFL, O_NONBLOCK);
	j->out_w = po[1];
	j->done_w = pd[1];
	atomic_store(&j->stop, false);
	if (pthread_create(&j->thread, NULL, follow_main, j) != 0) {
		close(po[0]);
		close(po[1]);
		close(pd[0]);
		close(pd[1]);
		j->out_w = j->done_w = -1;
		return err_set(e, TERR_FAIL, "slurm: cannot start a thread");
	}
	j->thread_on = true;
	*out_fd = po[0];
	*done_fd = pd[0];
	return 0;
}

void slurm_follow_stop(struct slurm_job *j)
{
	if (!j->thread_on)
		return;
	atomic_store(&j->stop, true);
	pthread_join(j->thread, NULL);
	j->thread_on = false;
	if (j->done_w >= 0)
		close(j->done_w);
	j->done_w = -1;
}
