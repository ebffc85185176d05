/* fuzz_docker_stream.c: the Docker Engine's multiplexed stdout/stderr
 * stream ([type,0,0,0,size BE32] + payload) and its JSON-lines progress
 * stream (docker/docker-stream.c), as they arrive from a container whose
 * output the job controls, split by the network anywhere; plus the image
 * name helpers that take a job's image string.
 *
 * Promise checked: feeding the stream in arbitrary pieces gives exactly
 * the same frames, bytes and stream ids as feeding it whole. */
#include "common/buf.h"
#include "common/err.h"
#include "docker/docker.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size);

struct sink {
	struct buf out[3];
};

static int on_frame(void *arg, int stream, const char *d, size_t n)
{
	struct sink *s = arg;

	if (buf_append(&s->out[stream == 1   ? 1
	                       : stream == 2 ? 2
	                                     : 0],
	               d, n, NULL) < 0)
		abort();
	return 0;
}

static int on_line(void *arg, json_t *obj, struct err *e)
{
	(*(size_t *)arg)++;
	return 0;
}

static void sink_init(struct sink *s)
{
	for (int i = 0; i < 3; i++)
		buf_init(&s->out[i], 64 << 20);
}

static void demux(const unsigned char *data, size_t size, unsigned seed)
{
	struct docker_demux whole, parts;
	struct sink a, b;
	size_t at = 0;

	sink_init(&a);
	sink_init(&b);
	docker_demux_init(&whole);
	docker_demux_init(&parts);
	docker_demux_feed(&whole, (const char *)data, size, on_frame, &a);
	while (at < size) {
		size_t n = 1 + (seed = seed * 1103515245u + 12345u) % 17;
		n = n < size - at ? n : size - at;
		docker_demux_feed(&parts, (const char *)data + at, n, on_frame,
		                  &b);
		at += n;
	}
	for (int i = 0; i < 3; i++) {
		if (a.out[i].len != b.out[i].len ||
		    (a.out[i].len > 0 &&
		     memcmp(a.out[i].data, b.out[i].data, a.out[i].len) != 0))
			abort();
		buf_free(&a.out[i]);
		buf_free(&b.out[i]);
	}
}

static void lines(const unsigned char *data, size_t size, unsigned seed)
{
	struct docker_lines l;
	struct err e = {0};
	size_t count = 0, at = 0;

	docker_lines_init(&l, on_line, &count, &e);
	while (at < size) {
		size_t n = 1 + (seed = seed * 1103515245u + 12345u) % 33;
		n = n < size - at ? n : size - at;
		if (docker_lines_feed(&l, (const char *)data + at, n) < 0)
			break;
		at += n;
	}
	docker_lines_free(&l);
}

static void image(const unsigned char *data, size_t size)
{
	char *s = strndup((const char *)data, size < 512 ? size : 512);
	char *repo = NULL, *tag = NULL, *u, *reg, *auth;

	if (s == NULL)
		abort();
	docker_image_split(s, &repo, &tag);
	u = docker_urlencode(s);
	reg = docker_image_registry(s);
	auth = docker_registry_auth(s, s);
	if (u != NULL && strpbrk(u, "/?#& \n") != NULL)
		abort(); /* an encoded name stays one path/query component */
	free(repo), free(tag), free(u), free(reg), free(auth), free(s);
}

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
	unsigned seed;

	if (size < 1 || size > (1 << 20))
		return 0;
	seed = data[0];
	demux(data + 1, size - 1, seed);
	lines(data + 1, size - 1, seed);
	image(data + 1, size - 1);
	return 0;
}
