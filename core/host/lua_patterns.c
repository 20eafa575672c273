/* lua_patterns.c — the sandbox's string.find/match/gmatch/gsub: Lua 5.4.4's pattern language,
 * results and error messages, with a matcher that counts its work and calls the check function
 * set by lua_patterns_set_check (the CPU budget) every LUA_PATTERNS_CHECK_STEPS units, because no
 * debug hook fires inside Lua's own C matcher. sandbox.c registers these functions; they call
 * only the Lua C API, and keep all match state on the C stack or in a Lua userdata. */
#include <ctype.h>
#include <lauxlib.h>
#include <string.h>

#include "host/lua_patterns.h"

/* Lua 5.4's limits (MAXCCALLS for nested matcher calls, LUA_MAXCAPTURES); scripts see both. */
#define PATTERNS_MAX_DEPTH 200
#define PATTERNS_MAX_CAPTURES 32
/* Lua 5.4.4 never restores the depth counter of a gmatch iterator whose match raised; once it
 * has gone below zero the limit is gone. We follow it, but stop at this floor rather than run
 * the C stack out as Lua would. */
#define PATTERNS_DEPTH_FLOOR (-5000)
/* capture lengths that are not lengths */
#define PATTERNS_CAP_OPEN (-1)
#define PATTERNS_CAP_POSITION (-2)
/* a back-reference compares this many bytes per unit of work */
#define PATTERNS_BYTES_PER_UNIT 64

struct patterns_capture {
    const char *start;
    ptrdiff_t len; /* or PATTERNS_CAP_OPEN / PATTERNS_CAP_POSITION */
};

struct patterns_state {
    lua_State *L;
    const char *subj;     /* subject; Lua strings end with a '\0' past subj_end */
    const char *subj_end; /* one past the last byte */
    const char *pat_end;  /* one past the pattern's last byte (also '\0') */
    int depth;            /* nested matcher calls still allowed */
    int ncap;             /* captures started so far, finished or not */
    ptrdiff_t units;      /* work left before the next check */
    struct patterns_capture cap[PATTERNS_MAX_CAPTURES];
};

/* A plain single-character item that starts the pattern and must match once: start positions
 * where it fails can be skipped without entering the matcher, because Lua's matcher would fail
 * there on that item before looking at (or raising about) anything after it. */
struct patterns_lead {
    const char *p;  /* the item */
    const char *ep; /* just past it */
    int literal;    /* the one byte it matches, or -1 for a class or a set */
};

struct patterns_gmatch {
    const char *src;  /* where the next search starts */
    const char *last; /* end of the previous match, or NULL */
    const char *pat;
    struct patterns_state st;
};

static lua_patterns_check_fn patterns_check;
/* carried from call to call so that many short calls still reach a check */
static _Thread_local ptrdiff_t patterns_units = LUA_PATTERNS_CHECK_STEPS;

void lua_patterns_set_check(lua_patterns_check_fn fn)
{
    patterns_check = fn;
}

static void patterns_tick(struct patterns_state *st)
{
    int top;
    st->units = LUA_PATTERNS_CHECK_STEPS;
    patterns_units = st->units;
    if (patterns_check == NULL)
        return;
    top = lua_gettop(st->L);
    patterns_check(st->L); /* may longjmp: nothing here needs freeing */
    lua_settop(st->L, top);
}

static inline void patterns_spend(struct patterns_state *st, ptrdiff_t n)
{
    st->units -= n;
    if (st->units <= 0)
        patterns_tick(st);
}

static void patterns_begin(struct patterns_state *st, lua_State *L, const char *s, size_t ls,
                           const char *p, size_t lp)
{
    st->L = L;
    st->subj = s;
    st->subj_end = s + ls;
    st->pat_end = p + lp;
    st->depth = PATTERNS_MAX_DEPTH;
    st->ncap = 0;
    st->units = patterns_units;
}

static void patterns_end(const struct patterns_state *st)
{
    patterns_units = st->units;
}

/* For each byte, the classes it is in; for each class letter (either case), its bit; 0 for any
 * other byte. Filled once from <ctype.h> by patterns_tables_init, in the C locale the process
 * keeps (nothing calls setlocale), so that a class costs two table reads rather than a tolower()
 * and an is*() call: the report's scripts test classes on every byte they scan. */
enum {
    PATTERNS_CL_A = 1 << 0,
    PATTERNS_CL_C = 1 << 1,
    PATTERNS_CL_D = 1 << 2,
    PATTERNS_CL_G = 1 << 3,
    PATTERNS_CL_L = 1 << 4,
    PATTERNS_CL_P = 1 << 5,
    PATTERNS_CL_S = 1 << 6,
    PATTERNS_CL_U = 1 << 7,
    PATTERNS_CL_W = 1 << 8,
    PATTERNS_CL_X = 1 << 9,
    PATTERNS_CL_Z = 1 << 10,
};
static unsigned short patterns_byte_classes[256];
static unsigned short patterns_class_bits[256];

static void patterns_tables_init(void)
{
    static const struct {
        char letter;
        unsigned short bit;
    } letters[] = {{'a', PATTERNS_CL_A}, {'c', PATTERNS_CL_C}, {'d', PATTERNS_CL_D},
                   {'g', PATTERNS_CL_G}, {'l', PATTERNS_CL_L}, {'p', PATTERNS_CL_P},
                   {'s', PATTERNS_CL_S}, {'u', PATTERNS_CL_U}, {'w', PATTERNS_CL_W},
                   {'x', PATTERNS_CL_X}, {'z', PATTERNS_CL_Z}};
    for (int c = 0; c < 256; c++) {
        patterns_byte_classes[c] =
            (unsigned short)((isalpha(c) ? PATTERNS_CL_A : 0) | (iscntrl(c) ? PATTERNS_CL_C : 0) |
                             (isdigit(c) ? PATTERNS_CL_D : 0) | (isgraph(c) ? PATTERNS_CL_G : 0) |
                             (islower(c) ? PATTERNS_CL_L : 0) | (ispunct(c) ? PATTERNS_CL_P : 0) |
                             (isspace(c) ? PATTERNS_CL_S : 0) | (isupper(c) ? PATTERNS_CL_U : 0) |
                             (isalnum(c) ? PATTERNS_CL_W : 0) | (isxdigit(c) ? PATTERNS_CL_X : 0) |
                             (c == 0 ? PATTERNS_CL_Z : 0));
        patterns_class_bits[c] = 0;
    }
    for (size_t i = 0; i < sizeof letters / sizeof letters[0]; i++) {
        patterns_class_bits[(unsigned char)letters[i].letter] = letters[i].bit;
        patterns_class_bits[toupper((unsigned char)letters[i].letter)] = letters[i].bit;
    }
}

/* "%<cl>" against byte c: the classes of the manual (plus Lua's deprecated %z); upper case is
 * the complement; any other character stands for itself. */
static inline int patterns_class(int c, int cl)
{
    unsigned bit = patterns_class_bits[cl];
    int hit;
    if (!bit)
        return cl == c;
    hit = (patterns_byte_classes[c] & bit) != 0;
    return isupper(cl) ? !hit : hit;
}

/* Byte c against the set that opens with '[' at p and closes with the ']' at close. */
static int patterns_in_set(int c, const char *p, const char *close)
{
    int inside = 1;
    p++;
    if (*p == '^') {
        inside = 0;
        p++;
    }
    for (; p < close; p++) {
        if (*p == '%') {
            p++;
            if (patterns_class(c, (unsigned char)*p))
                return inside;
        } else if (p[1] == '-' && p + 2 < close) {
            if ((unsigned char)p[0] <= c && c <= (unsigned char)p[2])
                return inside;
            p += 2;
        } else if ((unsigned char)*p == c) {
            return inside;
        }
    }
    return !inside;
}

/* End of the single-character item at p (a byte, '.', "%x" or a set), or NULL with *why set
 * when the item is malformed. */
static const char *patterns_item_scan(const char *p, const char *pat_end, const char **why)
{
    const char *q = p + 1;
    if (*p == '%') {
        if (q == pat_end) {
            *why = "malformed pattern (ends with '%')";
            return NULL;
        }
        return q + 1;
    }
    if (*p != '[')
        return q;
    if (*q == '^')
        q++;
    /* the first byte is a member even when it is ']'; "%]" is one too */
    do {
        if (q == pat_end) {
            *why = "malformed pattern (missing ']')";
            return NULL;
        }
        if (*q++ == '%' && q < pat_end)
            q++;
    } while (*q != ']');
    return q + 1;
}

static const char *patterns_item_end(struct patterns_state *st, const char *p)
{
    const char *why = NULL;
    const char *ep = patterns_item_scan(p, st->pat_end, &why);
    if (ep == NULL)
        luaL_error(st->L, "%s", why);
    return ep;
}

/* Does the byte at s (if any) match the item p..ep? */
static inline int patterns_single(const struct patterns_state *st, const char *s, const char *p,
                                  const char *ep)
{
    int c;
    if (s >= st->subj_end)
        return 0;
    c = (unsigned char)*s;
    switch (*p) {
    case '.':
        return 1;
    case '%':
        return patterns_class(c, (unsigned char)p[1]);
    case '[':
        return patterns_in_set(c, p, ep - 1);
    default:
        return (unsigned char)*p == c;
    }
}

/* How many bytes from s on match the item p..ep in a row. */
static size_t patterns_run(struct patterns_state *st, const char *s, const char *p, const char *ep)
{
    const char *q = s;
    const char *end = st->subj_end;
    int cl;
    switch (*p) {
    case '.':
        q = end;
        break;
    case '%':
        cl = (unsigned char)p[1];
        while (q < end && patterns_class((unsigned char)*q, cl))
            q++;
        break;
    case '[':
        if (ep - p == 4 && p[1] == '^' && p[2] != '%') {
            /* "[^c]", as in "[^\n]+" or "[^,]*": up to the next c */
            q = memchr(s, p[2], (size_t)(end - s));
            if (q == NULL)
                q = end;
            break;
        }
        while (q < end && patterns_in_set((unsigned char)*q, p, ep - 1))
            q++;
        break;
    default:
        while (q < end && *q == *p)
            q++;
        break;
    }
    patterns_spend(st, (q - s) + 1);
    return (size_t)(q - s);
}

static const char *patterns_match(struct patterns_state *st, const char *s, const char *p);

/* The depth counter went below zero: Lua's "pattern too complex", unless a gmatch iterator lost
 * its limit earlier (see PATTERNS_DEPTH_FLOOR). */
static void patterns_too_deep(struct patterns_state *st)
{
    if (st->depth == -1 || st->depth < PATTERNS_DEPTH_FLOOR)
        luaL_error(st->L, "pattern too complex");
}

/* "%bxy" at s; p points at x. */
static const char *patterns_balance(struct patterns_state *st, const char *s, const char *p)
{
    const char *q;
    int open = 1;
    if (p >= st->pat_end - 1)
        luaL_error(st->L, "malformed pattern (missing arguments to '%%b')");
    if (s >= st->subj_end || *s != p[0])
        return NULL;
    for (q = s + 1; q < st->subj_end; q++) {
        if (*q == p[1]) {
            open--;
            if (open == 0)
                break;
        } else if (*q == p[0]) {
            open++;
        }
    }
    patterns_spend(st, q - s);
    return q < st->subj_end ? q + 1 : NULL;
}

/* "%<digit>" at s: the text of an earlier, closed capture again. */
static const char *patterns_backref(struct patterns_state *st, const char *s, int digit)
{
    int i = digit - '1';
    size_t len;
    if (i < 0 || i >= st->ncap || st->cap[i].len == PATTERNS_CAP_OPEN)
        luaL_error(st->L, "invalid capture index %%%d", i + 1);
    if (st->cap[i].len == PATTERNS_CAP_POSITION)
        return NULL; /* Lua compares it as a huge length: never matches */
    len = (size_t)st->cap[i].len;
    patterns_spend(st, 1 + (ptrdiff_t)(len / PATTERNS_BYTES_PER_UNIT));
    if ((size_t)(st->subj_end - s) >= len && memcmp(st->cap[i].start, s, len) == 0)
        return s + len;
    return NULL;
}

static const char *patterns_open(struct patterns_state *st, const char *s, const char *p,
                                 ptrdiff_t kind)
{
    const char *res;
    int n = st->ncap;
    if (n >= PATTERNS_MAX_CAPTURES)
        luaL_error(st->L, "too many captures");
    st->cap[n].start = s;
    st->cap[n].len = kind;
    st->ncap = n + 1;
    res = patterns_match(st, s, p);
    if (res == NULL)
        st->ncap--;
    return res;
}

static const char *patterns_close(struct patterns_state *st, const char *s, const char *p)
{
    const char *res;
    int i = st->ncap - 1;
    while (i >= 0 && st->cap[i].len != PATTERNS_CAP_OPEN)
        i--;
    if (i < 0)
        luaL_error(st->L, "invalid pattern capture");
    st->cap[i].len = s - st->cap[i].start;
    res = patterns_match(st, s, p);
    if (res == NULL)
        st->cap[i].len = PATTERNS_CAP_OPEN;
    return res;
}

/* item* and item+ (after its first byte): longest run first, then one byte less at a time. */
static const char *patterns_greedy(struct patterns_state *st, const char *s, const char *p,
                                   const char *ep)
{
    size_t n = patterns_run(st, s, p, ep);
    for (;;) {
        const char *res = patterns_match(st, s + n, ep + 1);
        if (res != NULL)
            return res;
        if (n == 0)
            return NULL;
        n--;
    }
}

/* item-: shortest run first, one byte more at a time. */
static const char *patterns_lazy(struct patterns_state *st, const char *s, const char *p,
                                 const char *ep)
{
    for (;;) {
        const char *res = patterns_match(st, s, ep + 1);
        if (res != NULL)
            return res;
        if (!patterns_single(st, s, p, ep))
            return NULL;
        s++;
    }
}

/* Match pattern p.. against subject s..; the end of the match, or NULL. The depth counter and
 * the places that recurse are Lua's, so "pattern too complex" comes at the same point; pattern
 * items that need no backtracking loop here instead of recursing. */
static const char *patterns_match(struct patterns_state *st, const char *s, const char *p)
{
    st->depth--;
    if (st->depth < 0)
        patterns_too_deep(st);
    while (p != st->pat_end) {
        const char *ep;
        const char *res;
        if (--st->units <= 0)
            patterns_tick(st);
        switch (*p) {
        case '(':
            if (p[1] == ')')
                s = patterns_open(st, s, p + 2, PATTERNS_CAP_POSITION);
            else
                s = patterns_open(st, s, p + 1, PATTERNS_CAP_OPEN);
            goto out;
        case ')':
            s = patterns_close(st, s, p + 1);
            goto out;
        case '$':
            if (p + 1 != st->pat_end)
                break; /* a '$' elsewhere is a plain byte */
            if (s != st->subj_end)
                s = NULL;
            goto out;
        case '%':
            if (p[1] == 'b') {
                s = patterns_balance(st, s, p + 2);
                if (s == NULL)
                    goto out;
                p += 4;
                continue;
            }
            if (p[1] == 'f') {
                int before;
                p += 2;
                if (*p != '[')
                    luaL_error(st->L, "missing '[' after '%%f' in pattern");
                ep = patterns_item_end(st, p);
                before = s == st->subj ? 0 : (unsigned char)s[-1];
                if (patterns_in_set(before, p, ep - 1) ||
                    !patterns_in_set((unsigned char)*s, p, ep - 1)) {
                    s = NULL;
                    goto out;
                }
                p = ep;
                continue;
            }
            if (p[1] >= '0' && p[1] <= '9') {
                s = patterns_backref(st, s, p[1]);
                if (s == NULL)
                    goto out;
                p += 2;
                continue;
            }
            break;
        default:
            break;
        }
        /* a single-character item with an optional '*', '+', '-' or '?' */
        ep = patterns_item_end(st, p);
        if (!patterns_single(st, s, p, ep)) {
            if (*ep == '*' || *ep == '?' || *ep == '-') {
                p = ep + 1;
                continue;
            }
            s = NULL;
            goto out;
        }
        switch (*ep) {
        case '?':
            res = patterns_match(st, s + 1, ep + 1);
            if (res != NULL) {
                s = res;
                goto out;
            }
            p = ep + 1;
            continue;
        case '+':
            s = patterns_greedy(st, s + 1, p, ep);
            goto out;
        case '*':
            s = patterns_greedy(st, s, p, ep);
            goto out;
        case '-':
            s = patterns_lazy(st, s, p, ep);
            goto out;
        default:
            s++;
            p = ep;
            continue;
        }
    }
out:
    st->depth++;
    return s;
}

/* Fill *lead when the pattern p.. starts with an item it can describe; 0 when not. Never
 * raises: a malformed first item is left for the matcher to report. */
static int patterns_lead_init(const struct patterns_state *st, const char *p,
                              struct patterns_lead *lead)
{
    const char *why;
    const char *ep;
    if (p == st->pat_end || *p == '(' || *p == ')' || (*p == '$' && p + 1 == st->pat_end))
        return 0;
    if (*p == '%' && p + 1 < st->pat_end &&
        (p[1] == 'b' || p[1] == 'f' || (p[1] >= '0' && p[1] <= '9')))
        return 0;
    ep = patterns_item_scan(p, st->pat_end, &why);
    if (ep == NULL || *ep == '*' || *ep == '?' || *ep == '-')
        return 0;
    lead->p = p;
    lead->ep = ep;
    lead->literal = -1;
    if (*p != '.' && *p != '%' && *p != '[')
        lead->literal = (unsigned char)*p;
    else if (*p == '%' && !isalpha((unsigned char)p[1]))
        lead->literal = (unsigned char)p[1];
    else if (*p == '%' && strchr("acdglpsuwxz", tolower((unsigned char)p[1])) == NULL)
        lead->literal = (unsigned char)p[1];
    return 1;
}

/* First position from s on (s <= subj_end) where the lead item matches, or NULL. */
static const char *patterns_lead_next(struct patterns_state *st, const struct patterns_lead *lead,
                                      const char *s)
{
    const char *q = s;
    if (lead->literal >= 0) {
        q = memchr(s, lead->literal, (size_t)(st->subj_end - s));
    } else {
        while (q < st->subj_end && !patterns_single(st, q, lead->p, lead->ep))
            q++;
        if (q == st->subj_end)
            q = NULL;
    }
    patterns_spend(st, ((q != NULL ? q : st->subj_end) - s) / 8 + 1);
    return q;
}

/* Capture i of the last match (the whole match s..e when there are none and i is 0): its length
 * with *text set, or PATTERNS_CAP_POSITION with the position pushed. */
static ptrdiff_t patterns_capture_text(struct patterns_state *st, int i, const char *s,
                                       const char *e, const char **text)
{
    if (i >= st->ncap) {
        if (i != 0)
            luaL_error(st->L, "invalid capture index %%%d", i + 1);
        *text = s;
        return e - s;
    }
    *text = st->cap[i].start;
    if (st->cap[i].len == PATTERNS_CAP_OPEN)
        luaL_error(st->L, "unfinished capture");
    if (st->cap[i].len == PATTERNS_CAP_POSITION)
        lua_pushinteger(st->L, (st->cap[i].start - st->subj) + 1);
    return st->cap[i].len;
}

static void patterns_push_capture(struct patterns_state *st, int i, const char *s, const char *e)
{
    const char *text;
    ptrdiff_t len = patterns_capture_text(st, i, s, e, &text);
    if (len != PATTERNS_CAP_POSITION)
        lua_pushlstring(st->L, text, (size_t)len);
}

/* Push every capture (the whole match s..e when there are none, unless s is NULL); returns how
 * many. */
static int patterns_push_captures(struct patterns_state *st, const char *s, const char *e)
{
    int n = st->ncap;
    if (n == 0 && s != NULL)
        n = 1;
    luaL_checkstack(st->L, n, "too many captures");
    for (int i = 0; i < n; i++)
        patterns_push_capture(st, i, s, e);
    return n;
}

/* Lua 5.4's string.find/string.sub start position: negative counts from the end, clipped to 1;
 * the result is 1-based and may lie past the end. */
static size_t patterns_start(lua_Integer pos, size_t len)
{
    if (pos > 0)
        return (size_t)pos;
    if (pos == 0 || pos < -(lua_Integer)len)
        return 1;
    return len + (size_t)pos + 1;
}

static int patterns_has_specials(const char *p, size_t lp)
{
    for (size_t i = 0; i < lp; i++) {
        if (p[i] != '\0' && strchr("^$*+?.([%-", p[i]) != NULL)
            return 1;
    }
    return 0;
}

static int patterns_find_or_match(lua_State *L, int find)
{
    size_t ls, lp;
    const char *s = luaL_checklstring(L, 1, &ls);
    const char *p = luaL_checklstring(L, 2, &lp);
    size_t init = patterns_start(luaL_optinteger(L, 3, 1), ls) - 1;
    struct patterns_state st;
    struct patterns_lead lead;
    const char *s1;
    int anchor;
    int use_lead;
    if (init > ls) {
        luaL_pushfail(L);
        return 1;
    }
    if (find && (lua_toboolean(L, 4) || !patterns_has_specials(p, lp))) {
        const char *at = memmem(s + init, ls - init, p, lp);
        if (at == NULL) {
            luaL_pushfail(L);
            return 1;
        }
        lua_pushinteger(L, (at - s) + 1);
        lua_pushinteger(L, (lua_Integer)((at - s) + lp));
        return 2;
    }
    anchor = *p == '^';
    if (anchor) {
        p++;
        lp--;
    }
    patterns_begin(&st, L, s, ls, p, lp);
    use_lead = !anchor && patterns_lead_init(&st, p, &lead);
    s1 = s + init;
    do {
        const char *e;
        if (use_lead) {
            s1 = patterns_lead_next(&st, &lead, s1);
            if (s1 == NULL)
                break;
        }
        st.ncap = 0;
        e = patterns_match(&st, s1, p);
        if (e != NULL) {
            patterns_end(&st);
            if (!find)
                return patterns_push_captures(&st, s1, e);
            lua_pushinteger(L, (s1 - s) + 1);
            lua_pushinteger(L, e - s);
            return patterns_push_captures(&st, NULL, NULL) + 2;
        }
    } while (s1++ < st.subj_end && !anchor);
    patterns_end(&st);
    luaL_pushfail(L);
    return 1;
}

static int patterns_find(lua_State *L)
{
    return patterns_find_or_match(L, 1);
}

static int patterns_match_fn(lua_State *L)
{
    return patterns_find_or_match(L, 0);
}

/* The iterator string.gmatch returns; upvalues: subject, pattern, struct patterns_gmatch. */
static int patterns_gmatch_next(lua_State *L)
{
    struct patterns_gmatch *gm = lua_touserdata(L, lua_upvalueindex(3));
    struct patterns_state *st = &gm->st;
    struct patterns_lead lead;
    int use_lead;
    st->L = L;
    st->units = patterns_units;
    /* a depth left short by an earlier error must be met exactly as Lua meets it */
    use_lead = st->depth == PATTERNS_MAX_DEPTH && patterns_lead_init(st, gm->pat, &lead);
    for (const char *src = gm->src; src <= st->subj_end; src++) {
        const char *e;
        if (use_lead) {
            src = patterns_lead_next(st, &lead, src);
            if (src == NULL)
                break;
        }
        st->ncap = 0;
        e = patterns_match(st, src, gm->pat);
        if (e != NULL && e != gm->last) {
            gm->src = e;
            gm->last = e;
            patterns_end(st);
            return patterns_push_captures(st, src, e);
        }
    }
    patterns_end(st);
    return 0;
}

static int patterns_gmatch(lua_State *L)
{
    size_t ls, lp;
    const char *s = luaL_checklstring(L, 1, &ls);
    const char *p = luaL_checklstring(L, 2, &lp);
    size_t init = patterns_start(luaL_optinteger(L, 3, 1), ls) - 1;
    struct patterns_gmatch *gm;
    lua_settop(L, 2); /* the closure keeps subject and pattern alive */
    gm = lua_newuserdatauv(L, sizeof *gm, 0);
    if (init > ls)
        init = ls + 1;
    patterns_begin(&gm->st, L, s, ls, p, lp);
    gm->src = s + init;
    gm->last = NULL;
    gm->pat = p;
    lua_pushcclosure(L, patterns_gmatch_next, 3);
    return 1;
}

/* A string replacement for the match s..e: "%0".."%9" are captures, "%%" is '%'. */
static void patterns_add_template(struct patterns_state *st, luaL_Buffer *b, const char *s,
                                  const char *e)
{
    size_t left;
    const char *t = lua_tolstring(st->L, 3, &left);
    const char *pct;
    while ((pct = memchr(t, '%', left)) != NULL) {
        const char *text;
        ptrdiff_t len;
        luaL_addlstring(b, t, (size_t)(pct - t));
        pct++; /* past the '%'; may be the string's closing '\0' */
        if (*pct == '%') {
            luaL_addchar(b, '%');
        } else if (*pct == '0') {
            luaL_addlstring(b, s, (size_t)(e - s));
        } else if (isdigit((unsigned char)*pct)) {
            len = patterns_capture_text(st, *pct - '1', s, e, &text);
            if (len == PATTERNS_CAP_POSITION)
                luaL_addvalue(b);
            else
                luaL_addlstring(b, text, (size_t)len);
        } else {
            luaL_error(st->L, "invalid use of '%%' in replacement string");
        }
        left -= (size_t)(pct + 1 - t);
        t = pct + 1;
    }
    luaL_addlstring(b, t, left);
}

/* Append the replacement for the match s..e; 1 when it changed the text. A table or function
 * giving nil or false keeps the match as it was. */
static int patterns_add_replacement(struct patterns_state *st, luaL_Buffer *b, const char *s,
                                    const char *e, int repl_type)
{
    lua_State *L = st->L;
    if (repl_type == LUA_TFUNCTION) {
        int n;
        lua_pushvalue(L, 3);
        n = patterns_push_captures(st, s, e);
        lua_call(L, n, 1);
    } else if (repl_type == LUA_TTABLE) {
        patterns_push_capture(st, 0, s, e);
        lua_gettable(L, 3);
    } else {
        patterns_add_template(st, b, s, e);
        return 1;
    }
    /* stack: buffer..., the value */
    if (!lua_toboolean(L, -1)) {
        lua_pop(L, 1);
        luaL_addlstring(b, s, (size_t)(e - s));
        return 0;
    }
    if (!lua_isstring(L, -1))
        return luaL_error(L, "invalid replacement value (a %s)", luaL_typename(L, -1));
    luaL_addvalue(b);
    return 1;
}

static int patterns_gsub(lua_State *L)
{
    size_t ls, lp;
    const char *src = luaL_checklstring(L, 1, &ls);
    const char *p = luaL_checklstring(L, 2, &lp);
    const char *last = NULL;
    int repl_type = lua_type(L, 3);
    lua_Integer max_n = luaL_optinteger(L, 4, (lua_Integer)ls + 1);
    lua_Integer n = 0;
    int anchor = *p == '^';
    int changed = 0;
    int use_lead;
    struct patterns_state st;
    struct patterns_lead lead;
    luaL_Buffer b;
    luaL_argexpected(L,
                     repl_type == LUA_TNUMBER || repl_type == LUA_TSTRING ||
                         repl_type == LUA_TFUNCTION || repl_type == LUA_TTABLE,
                     3, "string/function/table");
    luaL_buffinit(L, &b);
    if (anchor) {
        p++;
        lp--;
    }
    patterns_begin(&st, L, src, ls, p, lp);
    use_lead = !anchor && patterns_lead_init(&st, p, &lead);
    while (n < max_n) {
        const char *e;
        if (use_lead) {
            const char *next = patterns_lead_next(&st, &lead, src);
            if (next == NULL)
                break; /* the rest is copied below */
            luaL_addlstring(&b, src, (size_t)(next - src));
            src = next;
        }
        st.ncap = 0;
        e = patterns_match(&st, src, p);
        if (e != NULL && e != last) {
            n++;
            changed |= patterns_add_replacement(&st, &b, src, e, repl_type);
            src = e;
            last = e;
        } else if (src < st.subj_end) {
            luaL_addchar(&b, *src);
            src++;
        } else {
            break;
        }
        if (anchor)
            break;
    }
    patterns_end(&st);
    if (!changed) {
        lua_pushvalue(L, 1);
    } else {
        luaL_addlstring(&b, src, (size_t)(st.subj_end - src));
        luaL_pushresult(&b);
    }
    lua_pushinteger(L, n);
    return 2;
}

void lua_patterns_register(lua_State *L)
{
    static const luaL_Reg patterns_funcs[] = {{"find", patterns_find},
                                              {"match", patterns_match_fn},
                                              {"gmatch", patterns_gmatch},
                                              {"gsub", patterns_gsub},
                                              {NULL, NULL}};
    if (!patterns_class_bits['a'])
        patterns_tables_init();
    luaL_setfuncs(L, patterns_funcs, 0);
}
