/* register.c: trade the registration token for an agent id and secret
 * (POST /agents/register), stored 0600 in state_dir/credentials. */
#include "agent/agent.h"
#include "agent/creds.h"

#include "common/err.h"
#include "common/fileio.h"
#include "common/json.h"
#include "common/log.h"
#include "common/util.h"

#include <stdlib.h>
#include <string.h>

static json_t *register_labels(const char *labels)
{
	json_t *arr = json_array();
	char *copy, *p, *save = NULL;

	if (labels == NULL)
		return arr;
	copy = xstrdup(labels);
	for (p = strtok_r(copy, ", ", &save); p != NULL;
	     p = strtok_r(NULL, ", ", &save))
		json_array_append_new(arr, json_string(p));
	free(copy);
	return arr;
}

const char *register_name(const struct agent *a)
{
	return a->conf.name ? a->conf.name : a->cap.hostname;
}

json_t *register_body(struct agent *a)
{
	int64_t room = a->conf.max_jobs + a->conf.prefetch;

	return json_pack(
	    "{s:s, s:o, s:s, s:i, s:s, s:s, s:b, s:s, s:s, s:o, s:o, s:I}",
	    "name", register_name(a), "labels", register_labels(a->conf.labels),
	    "version", TETHER_VERSION, "protocol", 1, "machine_id",
	    a->cap.machine_id, "transport", a->tp->name, "replace",
	    a->re_register, "os", a->cap.os, "kernel", a->cap.kernel,
	    "capacity", slurm_poll_capacity(a), "facts",
	    capacity_facts(&a->cap), "queue_depth", (json_int_t)room);
}

static int register_token(struct agent *a, char **out, struct err *e)
{
	char *text = NULL;
	int r;

	if (a->conf.token != NULL) {
		*out = xstrdup(a->conf.token);
		return 0;
	}
	if (a->conf.token_file == NULL)
		return err_set(
		    e, TERR_AUTH,
		    "not registered: set `token` or `token_file` "
		    "(a registration token from the workspace admin)");
	if ((r = file_read_all(a->conf.token_file, 4096, &text, NULL, e)) < 0)
		return err_wrap(e, "token_file");
	text[strcspn(text, " \r\n")] = '\0';
	*out = text;
	return 0;
}

/* What the workspace now knows of our capacity (lease.c compares): the
 * fingerprint of the capacity the registration carried. */
static void register_note_capacity(struct agent *a)
{
	if (a->cap_pending == NULL)
		return;
	agent_note(a, "capacity_sent", "%s", a->cap_pending);
	free(a->cap_pending);
	a->cap_pending = NULL;
}

static void register_done(void *arg, const struct tp_reply *rep)
{
	struct agent *a = arg;
	struct creds c = {0};
	struct err e = {0};
	const char *id, *secret;

	a->reg_call = NULL;
	if (rep->code < 0) {
		if (conn_failed(a, rep, "register"))
			return;
		log_error("registration failed: %s", rep->err.msg);
		agent_note(a, "auth_error", "registration failed: %s",
		           rep->err.msg);
		a->quit = true;
		a->auth_failed = true;
		return;
	}
	conn_ok(a);
	id = json_string_value(json_object_get(rep->json, "agent_id"));
	secret = json_string_value(json_object_get(rep->json, "secret"));
	if (id == NULL || secret == NULL) {
		log_error("registration reply lacks agent_id or secret");
		a->quit = true;
		return;
	}
	c.agent_id = (char *)id;
	c.secret = (char *)secret;
	c.workspace = a->conf.workspace;
	c.name = (char *)register_name(a);
	if (creds_save(a->conf.state_dir, &c, &e) < 0) {
		log_error("save credentials: %s", e.msg);
		a->quit = true;
		return;
	}
	a->agent_id = xstrdup(id);
	a->secret = xstrdup(secret);
	a->tp->set_token(a->t, a->secret);
	agent_note(a, "agent_id", "%s", id);
	register_note_capacity(a);
	agent_note(a, "auth_error", "%s", "");
	log_info("registered as %s (%s)", register_name(a), id);
	lease_poll_soon(a, 0);
}

int register_start(struct agent *a, struct err *e)
{
	char *token = NULL;
	json_t *body;
	int r;

	if (a->reg_call != NULL)
		return 0;
	if ((r = register_token(a, &token, e)) < 0)
		return r;
	a->tp->set_token(a->t, token);
	freezero_str(token);
	body = register_body(a);
	free(a->cap_pending);
	a->cap_pending =
	    slurm_poll_fingerprint(json_object_get(body, "capacity"));
	r = a->tp->register_agent(a->t, body, register_done, a, &a->reg_call,
	                          e);
	json_decref(body);
	return r;
}
