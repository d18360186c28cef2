/* tests/fuzz/fuzz_cfg.c -- the config loader (cfg_parse) on any YAML text: it must answer a
 * config or one error message, never crash, leak or read past the text; a config it accepts must
 * build a routing snapshot and compare equal to itself (cfg_diff). */
#include "tests/fuzz/fuzz.h"

#include <stdlib.h>
#include <string.h>

#include "balancer/bal.h"
#include "config/cfg.h"

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    xf_log_min = XF_LOG_ERR + 1; /* the loader warns about odd but valid settings */
    return 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* A copy of exactly `size` bytes, no NUL after it: ASan sees any read past the text. */
    char *text = malloc(size > 0 ? size : 1);
    struct xf_err err = {{0}};
    struct cfg *cfg;

    if (text == NULL)
        return 0;
    memcpy(text, data, size);
    cfg = cfg_parse(text, size, "fuzz.yaml", &err);
    if (cfg == NULL) {
        FZ_CHECK(err.msg[0] != '\0', "a refused config without a message");
        FZ_CHECK(memchr(err.msg, '\0', sizeof(err.msg)) != NULL, "an unterminated message");
    } else {
        struct cfg_diff d;
        struct bal_snapshot *snap = bal_snapshot_new(cfg, NULL, 1, &err);

        FZ_CHECK(snap != NULL, "a config cfg_parse accepts cannot be routed with: %s", err.msg);
        bal_snapshot_unref(snap);
        FZ_CHECK(cfg_diff(cfg, cfg, &d) == 0, "a config differs from itself: %s", d.refused);
        cfg_free(cfg);
    }
    free(text);
    return 0;
}
