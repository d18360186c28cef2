/* tests/fuzz/fuzz.h -- what the libFuzzer harnesses share: checks that abort, the input split
 * into chunks, and name resolution kept off the network (docs/fuzzing.md). */
#ifndef FUZZ_H
#define FUZZ_H

#include <stddef.h>
#include <stdint.h>

/* libFuzzer's entry points (the harness defines the first, may define the second). */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

/* A property the harness asserts: on failure, says which and aborts so libFuzzer keeps the input
 * (assert() would vanish under NDEBUG). */
#define FZ_CHECK(cond, ...)                                                                        \
    do {                                                                                           \
        if (!(cond))                                                                               \
            fz_fail(__FILE__, __LINE__, #cond, __VA_ARGS__);                                       \
    } while (0)

void fz_fail(const char *file, int line, const char *cond, const char *fmt, ...)
    __attribute__((noreturn, format(printf, 4, 5)));

/* At most this many chunks an input is cut into. */
#define FZ_MAX_CHUNKS 8

/*
 * Cuts an input into chunks at points its first byte(s) choose, so that a run is reproducible from
 * the input alone: byte 0's low 3 bits are the number of cuts (0..7), each next byte the position
 * of one cut as a share of what follows. *payload and *payload_len get the rest of the input;
 * ends[0..n) the end offset of each chunk in it (the last is payload_len). Returns n >= 1.
 */
size_t fz_split(const uint8_t *data, size_t size, const uint8_t **payload, size_t *payload_len,
                size_t ends[FZ_MAX_CHUNKS]);

#endif
