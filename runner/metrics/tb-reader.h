/* tb-reader.h: the TensorBoard reader that runs inside a job's sandbox
 * (tb-reader.c, docs/metrics.md).  Only in tether-runner-full (protobuf-c):
 * runner_needs_full() sends a job with metrics.tensorboard there. */
#ifndef TETHER_TB_READER_H
#define TETHER_TB_READER_H

#include <stddef.h>
#include <stdint.h>

/* Tail the event files under dir (a path in the sandbox) and write one
 * TETHER_METRIC line per scalar to out_fd until SIGTERM from pid 1; never
 * returns.  Called as the job user, without capabilities. */
void tb_reader_main(const char *dir, int out_fd) __attribute__((noreturn));
/* CRC-32C (Castagnoli) and TensorFlow's masked form of it. */
uint32_t tb_crc32c(const uint8_t *p, size_t n);
uint32_t tb_masked_crc(const uint8_t *p, size_t n);

#endif
