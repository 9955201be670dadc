/* cmd_tokenize.c — `gqsa tokenize`: print the token ids of a text (or decode ids back to text)
 * with a model's tokenizer or a tokenizer file.
 * Must not: load model weights (only the tokenizer part of a model file is read).
 */
#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "../core/gguf.h"
#include "../core/tokenizer.h"
#include "cli.h"

static void usage(FILE *f) {
    fprintf(f,
            "usage: gqsa tokenize (--model M | --tokenizer FILE) [options] (TEXT | --file F)\n"
            "       gqsa tokenize (--model M | --tokenizer FILE) --decode (ID ... | --file F)\n\n"
            "Print the token ids of TEXT (or of the whole content of file F, byte for byte) on one line,\n"
            "space-separated, or with --decode print the text of the given ids (special tokens skipped).\n\n"
            "  --model M        a .gguf (its tokenizer.ggml.* metadata), a llama2.c .bin (tok<V>.bin or\n"
            "                   tokenizer.bin beside it), or a directory holding tokenizer.json or\n"
            "                   tokenizer.model; no weights are loaded\n"
            "  --tokenizer F    a sentencepiece tokenizer.model, an HF tokenizer.json or a llama2.c\n"
            "                   tokenizer.bin (recognised by content)\n"
            "  --vocab-size N   llama2.c tokenizer.bin only: read N tokens (default: all in the file)\n"
            "  --bos / --no-bos prepend BOS or not (default: what the reference tokenizer does: LLaMA\n"
            "                   sentencepiece and llama2.c yes, SmolLM2 no)\n"
            "  --pieces         print one 'id<TAB>piece' line per token instead\n"
            "  --file F         read the text (or, with --decode, whitespace-separated ids) from F\n"
            "  --decode         ids -> text\n\n"
            "Invalid UTF-8 input is an error naming the byte offset.\n"
            "examples:\n"
            "  gqsa tokenize --tokenizer ../shared/models/llama2-tokenizer/tokenizer.model 'Hello world'\n"
            "  gqsa tokenize --model models/SmolLM2-135M-Instruct.Q4_1.gguf --decode 19556 905\n");
}

static int has_suffix(const char *s, const char *suf) {
    size_t n = strlen(s), m = strlen(suf);
    return n >= m && !strcmp(s + n - m, suf);
}

/* The tokenizer of a model file without loading weights. */
static gq_status open_model_tokenizer(const char *path, gq_tokenizer **out) {
    char buf[4096];
    FILE *f = fopen(path, "rb");
    if (!f) {
        /* a directory: tokenizer.json, then tokenizer.model */
        snprintf(buf, sizeof buf, "%s/tokenizer.json", path);
        if (gq_file_exists(buf)) return gq_tokenizer_load(buf, 0, out);
        snprintf(buf, sizeof buf, "%s/tokenizer.model", path);
        if (gq_file_exists(buf)) return gq_tokenizer_load(buf, 0, out);
        return gq_errf(GQ_ERR_IO, "%s: cannot open (%s)", path, strerror(errno));
    }
    unsigned char hdr[28];
    size_t got = fread(hdr, 1, sizeof hdr, f);
    fclose(f);
    if (got >= 4 && !memcmp(hdr, "GGUF", 4)) {
        gq_gguf *g;
        GQ_TRY(gq_gguf_open(path, &g));
        gq_status st = gq_tokenizer_from_gguf(g, out);
        gq_gguf_close(g);
        return st;
    }
    if (got == 28 && has_suffix(path, ".bin")) {
        int32_t v = (int32_t)((uint32_t)hdr[20] | (uint32_t)hdr[21] << 8 | (uint32_t)hdr[22] << 16 | (uint32_t)hdr[23] << 24);
        if (v < 0) v = -v;
        if (v <= 0 || v > (1 << 24)) return gq_errf(GQ_ERR_FORMAT, "%s: vocab_size %d in the llama2.c header", path, v);
        char dir[2048];
        snprintf(dir, sizeof dir, "%s", path);
        char *slash = strrchr(dir, '/');
        if (slash) *slash = 0;
        else snprintf(dir, sizeof dir, ".");
        snprintf(buf, sizeof buf, "%s/tok%d.bin", dir, v);
        if (!gq_file_exists(buf)) snprintf(buf, sizeof buf, "%s/tokenizer.bin", dir);
        if (!gq_file_exists(buf))
            return gq_errf(GQ_ERR_IO, "%s: no tok%d.bin or tokenizer.bin beside the llama2.c model", path, v);
        return gq_tokenizer_load(buf, v, out);
    }
    return gq_errf(GQ_ERR_FORMAT, "%s: not a GGUF, llama2.c .bin or tokenizer directory", path);
}

int cmd_tokenize(int argc, char **argv) {
    const char *model = NULL, *tokfile = NULL, *file = NULL, *vs = NULL;
    int bos = -1, decode = 0, pieces = 0, vocab = 0;
    int first_pos = -1;
    for (int i = 1; i < argc; i++) {
        int r;
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) { usage(stdout); return 0; }
        if ((r = cli_flag(argc, argv, &i, "--model", &model))) { if (r < 0) return 2; continue; }
        if ((r = cli_flag(argc, argv, &i, "--tokenizer", &tokfile))) { if (r < 0) return 2; continue; }
        if ((r = cli_flag(argc, argv, &i, "--file", &file))) { if (r < 0) return 2; continue; }
        if ((r = cli_flag(argc, argv, &i, "--vocab-size", &vs))) {
            if (r < 0 || cli_parse_int("--vocab-size", vs, 1, 1 << 24, &vocab)) return 2;
            continue;
        }
        if (!strcmp(argv[i], "--bos")) { bos = 1; continue; }
        if (!strcmp(argv[i], "--no-bos")) { bos = 0; continue; }
        if (!strcmp(argv[i], "--decode")) { decode = 1; continue; }
        if (!strcmp(argv[i], "--pieces")) { pieces = 1; continue; }
        if (!strcmp(argv[i], "--")) { first_pos = i + 1; break; }
        if (argv[i][0] == '-' && argv[i][1] == '-') return cli_usage_error(argv[0], "unknown option '%s'", argv[i]);
        first_pos = i;
        break;
    }
    int npos = first_pos >= 0 ? argc - first_pos : 0;
    if (!!model + !!tokfile != 1) return cli_usage_error(argv[0], "give exactly one of --model and --tokenizer");
    if (!!file + (npos > 0) != 1)
        return cli_usage_error(argv[0], decode ? "give ids or --file" : "give one TEXT argument or --file");
    if (!decode && npos > 1) return cli_usage_error(argv[0], "give the text as one argument (quote it)");

    gq_tokenizer *t;
    gq_status st = model ? open_model_tokenizer(model, &t) : gq_tokenizer_load(tokfile, vocab, &t);
    if (st != GQ_OK) return cli_fail(st, "--tokenizer takes tokenizer.model, tokenizer.json or tokenizer.bin");

    char *data = NULL;
    size_t len = 0;
    if (file && (st = gq_read_file(file, &data, &len)) != GQ_OK) {
        gq_tokenizer_free(t);
        return cli_fail(st, NULL);
    }
    int rc = 0;
    if (decode) {
        size_t n = 0, cap = 16;
        int32_t *ids = malloc(cap * sizeof *ids);
        char *save = NULL;
        char *tok = file ? strtok_r(data, " \t\r\n", &save) : NULL;
        for (int k = 0;; k++) {
            const char *s = file ? tok : (k < npos ? argv[first_pos + k] : NULL);
            if (!s) break;
            int v;
            if (cli_parse_int("token id", s, 0, gq_tokenizer_vocab_size(t) - 1, &v)) { rc = 2; break; }
            if (n == cap) ids = realloc(ids, (cap *= 2) * sizeof *ids);
            if (!ids) { rc = cli_fail(GQ_ERR_NOMEM, NULL); break; }
            ids[n++] = v;
            if (file) tok = strtok_r(NULL, " \t\r\n", &save);
        }
        char *text = NULL;
        size_t tl = 0;
        if (!rc && (st = gq_tokenizer_decode(t, ids, n, &text, &tl)) != GQ_OK) rc = cli_fail(st, NULL);
        if (!rc) {
            fwrite(text, 1, tl, stdout);
            putchar('\n');
        }
        free(text);
        free(ids);
    } else {
        const char *text = file ? data : argv[first_pos];
        if (!file) len = strlen(text);
        int add_bos = bos >= 0 ? bos : gq_tokenizer_add_bos_default(t);
        int32_t *ids;
        size_t n;
        if ((st = gq_tokenizer_encode(t, text, len, add_bos, &ids, &n)) != GQ_OK) {
            rc = cli_fail(st, "the text must be UTF-8");
        } else {
            for (size_t k = 0; k < n; k++) {
                if (pieces) printf("%d\t%s\n", ids[k], gq_tokenizer_piece(t, ids[k]));
                else printf(k ? " %d" : "%d", ids[k]);
            }
            if (!pieces) putchar('\n');
            free(ids);
        }
    }
    free(data);
    gq_tokenizer_free(t);
    return rc;
}
