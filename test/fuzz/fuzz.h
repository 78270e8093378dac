/*
 * Shared by the fuzz targets: the libFuzzer entry point, a check that (unlike
 * assert) survives NDEBUG and aborts so the fuzzer keeps the reproducer, and
 * independent oracles for the core's rules, written from the headers'
 * documentation rather than from the implementation.
 */
#ifndef TP0_FUZZ_H
#define TP0_FUZZ_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "tp0/bet.h"
#include "tp0/buf.h"
#include "tp0/util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_CHECK(cond)                                                                           \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "%s:%d: fuzz check failed: %s\n", __FILE__, __LINE__, #cond);          \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

/* True when [p, p + len) lies inside [base, base + base_len); empty views pass. */
bool fuzz_inside(const void *p, size_t len, const void *base, size_t base_len);
/* Reads every byte of the view, so ASan/valgrind see a bad pointer at once. */
void fuzz_touch(struct str s);
/* An error buffer size picked by the input: the full size, or small ones that
 * force truncation. */
size_t fuzz_errlen(uint8_t selector);
/* After a failure err must be NUL-terminated within errlen and say something. */
void fuzz_check_err(const char *err, size_t errlen, bool failed);

/* A byte-exact serialisation of a bet, for comparing bets across round trips. */
void fuzz_bet_canon(struct buf *out, const struct bet *bet);
bool fuzz_bet_eq(const struct bet *a, const struct bet *b);
bool fuzz_str_eq(struct str a, struct str b);

/* Runs bet_validate and checks its verdict against the documented rules: a bet
 * that breaks a rule is rejected, a bet that is clean by a strict reading of
 * every rule is accepted. Returns bet_validate's verdict. */
bool fuzz_validate_bet(const struct bet *bet, size_t errlen);

#endif
