/* loop.h: the agent's one event loop: epoll over fds, timers on
 * CLOCK_MONOTONIC (the epoll_wait timeout of the nearest one). */
#ifndef TETHER_AGENT_LOOP_H
#define TETHER_AGENT_LOOP_H

#include <stdbool.h>
#include <stdint.h>

struct err;
struct loop;
struct loop_timer;

typedef void (*loop_fd_fn)(void *arg, int fd, uint32_t events);
typedef void (*loop_timer_fn)(void *arg);

int loop_new(struct loop **out, struct err *e);
void loop_free(struct loop *l);
/* Watch fd for epoll `events` (add or modify). */
int loop_watch(struct loop *l, int fd, uint32_t events, loop_fd_fn fn,
               void *arg, struct err *e);
void loop_unwatch(struct loop *l, int fd);
struct loop_timer *loop_timer_new(struct loop *l, loop_timer_fn fn, void *arg);
/* Fire after delay_ms (0: on the next turn); -1 disarms. */
void loop_timer_set(struct loop_timer *t, int64_t delay_ms);
bool loop_timer_armed(const struct loop_timer *t);
void loop_timer_free(struct loop_timer *t);
/* Wait for and dispatch one batch of events. */
int loop_run_once(struct loop *l, struct err *e);
/* Number of times epoll_wait returned (for the idle-wakeup check). */
uint64_t loop_wakeups(const struct loop *l);

#endif
