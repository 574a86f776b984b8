/*
 * The NOP loop of ring-bench (`ring_nops`, `uring_nops`) on liburing, for
 * counting user-space instructions under callgrind beside ring and the
 * io-uring crate: push BATCH NOPs, submit and wait for them, reap them;
 * OPS in all. `cargo xtask bench` builds it with
 * `cc -O2 liburing_nops.c -luring` (Debian: liburing-dev) and runs
 * `liburing-nops BATCH OPS` under valgrind, as `ring-bench --callgrind`.
 * The ring is set up plainly (io_uring_queue_init, no flags), as the
 * callgrind rows of ring and the io-uring crate are.
 */
#include <liburing.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(int argc, char **argv)
{
	if (argc != 3) {
		fprintf(stderr, "usage: %s BATCH OPS\n", argv[0]);
		return 2;
	}
	unsigned batch = (unsigned)strtoul(argv[1], NULL, 10);
	unsigned long long ops = strtoull(argv[2], NULL, 10);
	unsigned entries = 8;
	while (entries < batch)
		entries <<= 1;
	struct io_uring ring;
	int ret = io_uring_queue_init(entries, &ring, 0);
	if (ret < 0) {
		fprintf(stderr, "io_uring_queue_init: %s\n", strerror(-ret));
		return 1;
	}
	unsigned long long done = 0;
	volatile unsigned long long sink = 0;
	while (done < ops) {
		for (unsigned i = 0; i < batch; i++) {
			struct io_uring_sqe *sqe = io_uring_get_sqe(&ring);
			if (!sqe) {
				fprintf(stderr, "batch does not fit the SQ\n");
				return 1;
			}
			io_uring_prep_nop(sqe);
			io_uring_sqe_set_data64(sqe, i);
		}
		ret = io_uring_submit_and_wait(&ring, batch);
		if (ret < 0) {
			fprintf(stderr, "io_uring_submit_and_wait: %s\n", strerror(-ret));
			return 1;
		}
		unsigned head, reaped = 0;
		struct io_uring_cqe *cqe;
		io_uring_for_each_cqe(&ring, head, cqe) {
			sink = cqe->user_data;
			reaped++;
		}
		io_uring_cq_advance(&ring, reaped);
		if (reaped != batch) {
			fprintf(stderr, "reaped %u of %u\n", reaped, batch);
			return 1;
		}
		done += batch;
	}
	(void)sink;
	io_uring_queue_exit(&ring);
	return 0;
}
