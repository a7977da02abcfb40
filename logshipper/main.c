/* main.c - tlm-logshipper: loads the configuration, wires the writer, the ingest links and
 * the metrics vhost into one lws loop, and drains on SIGTERM/SIGINT. */
#include <malloc.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "../common/log.h"
#include "metrics_http.h"
#include "shipper.h"

#define DRAIN_POLL_US (20 * LWS_US_PER_MS)

static void usage(FILE *f)
{
    fprintf(f,
            "usage: tlm-logshipper [--help] [--print-config]\n\n"
            "Receives records from tlm-ingest on a UNIX socket and writes one JSON line per\n"
            "record to stdout (or the systemd journal); serves /metrics, /health/live and\n"
            "/health/ready. Configuration comes from the environment, chiefly:\n"
            "  TELEMETRY_SOCKET               UNIX socket to listen on (/run/tlm/tlm.sock)\n"
            "  TELEMETRY_LISTEN               address of the metrics port (0.0.0.0)\n"
            "  TELEMETRY_METRICS_PORT         metrics and health port (9107)\n"
            "  TELEMETRY_TRACES_PROVIDER      Console (stdout) or Journal\n"
            "  TELEMETRY_SHIPPER_BUFFER_BYTES lines held for stdout before reads pause (32 MiB)\n"
            "  TELEMETRY_DRAIN_TIMEOUT        seconds SIGTERM may take to write and ack (20)\n"
            "  TELEMETRY_METRICS_THRESHOLD    most metric series (600000)\n"
            "  TELEMETRY_CONFIG_CONTRACTS     contracts (monitored events, thresholds, apdex)\n"
            "  APP_LOG_LEVEL, API_LOG_LEVEL   diagnostics on stderr (info, warn)\n"
            "stdout is set O_NONBLOCK while the daemon runs. Exit: 0 after a drain, 1 on a\n"
            "runtime failure (stdout gone, port or socket unusable), 2 on bad configuration.\n"
            "--print-config lists every variable of both daemons as a Markdown table.\n");
}

/* ---- hooks from the writer ---- */

static void stop(struct shipper *sh, int code)
{
    if (!sh->done) {
        sh->done = 1;
        sh->exit_code = code;
        lws_cancel_service(sh->ctx);
    }
}

static void on_frame_done(void *owner, uint64_t seq, void *user)
{
    (void)user;
    link_server_frame_done(owner, seq);
}

static void on_pressure(int over, void *user)
{
    struct shipper *sh = user;
    if (sh->draining || !sh->links)
        return; /* draining keeps every link paused */
    log_app(over ? LOG_WARN : LOG_INFO,
            over ? "output buffer over TELEMETRY_SHIPPER_BUFFER_BYTES: pausing ingest links"
                 : "output buffer under half: reading ingest links again");
    link_server_pause(sh->links, over);
}

static void on_observe(const struct proto_record *r, void *user)
{
    contracts_observe(((struct shipper *)user)->contracts, r);
}

static void on_fatal(const char *why, void *user)
{
    struct shipper *sh = user;
    log_app(LOG_ERROR, "%s; exiting (records not acked are re-sent by the ingest)", why);
    stop(sh, 1);
}

/* ---- drain ---- */

static void drain_deadline(lws_sorted_usec_list_t *sul)
{
    struct shipper *sh = lws_container_of(sul, struct shipper, deadline_sul);
    log_app(LOG_WARN, "drain timeout: %zu bytes of lines unwritten (never acked: the ingest "
                      "re-sends them)", writer_queued_bytes(sh->writer));
    stop(sh, 0);
}

/* Every 20 ms: all received written? all acks out? then BYE, then exit once links closed. */
static void drain_step(lws_sorted_usec_list_t *sul)
{
    struct shipper *sh = lws_container_of(sul, struct shipper, drain_sul);
    if (!writer_queued_frames(sh->writer) && !link_server_busy(sh->links)) {
        if (!sh->bye_sent) {
            link_server_say_bye(sh->links);
            sh->bye_sent = 1;
        } else if (!link_server_links(sh->links)) {
            log_app(LOG_INFO, "drained: every received record written and acked");
            stop(sh, 0);
            return;
        }
    }
    lws_sul_schedule(sh->ctx, 0, &sh->drain_sul, drain_step, DRAIN_POLL_US);
}

static void drain_begin(struct shipper *sh, int signo)
{
    if (sh->draining) {
        log_app(LOG_WARN, "signal %d during drain: exiting now", signo);
        stop(sh, 0);
        return;
    }
    log_app(LOG_INFO, "signal %d: draining (up to %lld s)", signo, sh->cfg.drain_timeout_s);
    sh->draining = 1;
    link_server_stop_listening(sh->links);
    link_server_pause(sh->links, 1);
    lws_sul_schedule(sh->ctx, 0, &sh->deadline_sul, drain_deadline,
                     (lws_usec_t)sh->cfg.drain_timeout_s * LWS_US_PER_SEC);
    lws_sul_schedule(sh->ctx, 0, &sh->drain_sul, drain_step, 0);
}

/* SIGTERM/SIGINT arrive through a signalfd adopted into the loop: no handler, no global. */
static int signal_cb(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                     size_t len)
{
    struct shipper *sh = lws_get_opaque_user_data(wsi);
    struct signalfd_siginfo si;
    (void)user;
    (void)in;
    (void)len;
    if (reason == LWS_CALLBACK_RAW_RX_FILE && sh)
        while (read(lws_get_socket_fd(wsi), &si, sizeof(si)) == (ssize_t)sizeof(si))
            drain_begin(sh, (int)si.ssi_signo);
    return 0;
}

static const struct lws_protocols signal_protocol = {"tlm-signal", signal_cb, 0, 0, 0, NULL, 0};

static int adopt_signals(struct shipper *sh, const sigset_t *set)
{
    lws_adopt_desc_t ad;
    memset(&ad, 0, sizeof(ad));
    ad.vh = sh->vhost;
    ad.type = LWS_ADOPT_RAW_FILE_DESC;
    ad.fd.filefd = signalfd(-1, set, SFD_NONBLOCK | SFD_CLOEXEC);
    ad.vh_prot_name = signal_protocol.name;
    ad.opaque = sh;
    if (ad.fd.filefd < 0)
        return -1;
    if (!lws_adopt_descriptor_vhost_via_info(&ad)) {
        close(ad.fd.filefd);
        return -1;
    }
    return 0;
}

/* lws's own messages as our JSON lines. */
static void lws_to_log(int level, const char *line)
{
    size_t n = strlen(line);
    while (n && (line[n - 1] == '\n' || line[n - 1] == '\r'))
        n--;
    log_app(level & LLL_ERR ? LOG_ERROR : LOG_WARN, "lws: %.*s", (int)n, line);
}

int main(int argc, char **argv)
{
    /* Buffers of 256 KiB and more (frames, bodies, output) get their own mappings and go back
     * to the system when freed: a fixed threshold stops glibc from raising it and growing a
     * fragmented heap that keeps RSS far above what the buffer bounds allow. */
    mallopt(M_MMAP_THRESHOLD, 256 * 1024);
    struct shipper sh;
    struct lws_protocols protocols[6];
    struct lws_context_creation_info info;
    char err[512];
    sigset_t sigs;

    memset(&sh, 0, sizeof(sh));
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--print-config")) {
            config_print_markdown();
            return 0;
        }
        int help = !strcmp(argv[i], "--help") || !strcmp(argv[i], "-h");
        usage(help ? stdout : stderr);
        return help ? 0 : 2;
    }
    if (config_load_env(&sh.cfg, err, sizeof(err))) {
        log_setup("logshipper", LOG_INFO, LOG_WARN);
        log_app(LOG_ERROR, "%s", err);
        config_free(&sh.cfg);
        return 2;
    }
    log_setup("logshipper", log_level_parse(sh.cfg.app_log_level),
              log_level_parse(sh.cfg.api_log_level));
    lws_set_log_level(LLL_ERR | LLL_WARN, lws_to_log);
    signal(SIGPIPE, SIG_IGN);
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGTERM);
    sigaddset(&sigs, SIGINT);
    sigprocmask(SIG_BLOCK, &sigs, NULL);

    sh.exit_code = 2;
    sh.reg = prom_registry_new((size_t)sh.cfg.metrics_threshold);
    if (!sh.reg || !(sh.contracts = contracts_new(sh.cfg.contracts, sh.reg, err, sizeof(err)))) {
        log_app(LOG_ERROR, "%s", sh.reg ? err : "out of memory");
        goto out;
    }
    struct writer_config wc = {
        !strcasecmp(sh.cfg.traces_provider, "Journal") ? WRITER_JOURNAL : WRITER_CONSOLE,
        STDOUT_FILENO, (size_t)sh.cfg.shipper_buffer_bytes, 0, 0};
    struct writer_hooks wh = {on_frame_done, on_pressure, on_observe, NULL, NULL, on_fatal, &sh};
    if (!(sh.writer = writer_new(&wc, &wh, err, sizeof(err)))) {
        log_app(LOG_ERROR, "%s", err);
        if (wc.sink == WRITER_CONSOLE)
            sh.exit_code = 1;
        goto out;
    }

    sh.exit_code = 1;
    protocols[0] = metrics_http_protocol;
    protocols[1] = link_server_listen_protocol;
    protocols[2] = link_server_link_protocol;
    protocols[3] = writer_lws_protocol;
    protocols[4] = signal_protocol;
    memset(&protocols[5], 0, sizeof(protocols[5]));
    memset(&info, 0, sizeof(info));
    info.port = (int)sh.cfg.metrics_port;
    info.protocols = protocols;
    info.vhost_name = "logshipper";
    info.user = &sh;
    info.server_string = "tlm-logshipper";
    info.timeout_secs = 10;
    info.keepalive_timeout = 30;
    info.max_http_header_data = 4096;
    /* "0.0.0.0" means every IPv4 address, "::" (or empty) every address; else that one */
    const char *listen = sh.cfg.listen;
    if (!strcmp(listen, "0.0.0.0") || (!strchr(listen, ':') && *listen))
        info.options |= LWS_SERVER_OPTION_DISABLE_IPV6;
    info.iface = !strcmp(listen, "0.0.0.0") || !strcmp(listen, "::") || !*listen ? NULL : listen;
    if (!(sh.ctx = lws_create_context(&info)) ||
        !(sh.vhost = lws_get_vhost_by_name(sh.ctx, info.vhost_name))) {
        log_app(LOG_ERROR, "cannot serve metrics on %s:%lld", listen, sh.cfg.metrics_port);
        goto out;
    }
    if (writer_lws_attach(sh.writer, sh.ctx, sh.vhost, err, sizeof(err)) ||
        !(sh.links = link_server_new(sh.ctx, sh.vhost, sh.cfg.socket_path, sh.writer, err,
                                     sizeof(err)))) {
        log_app(LOG_ERROR, "%s", err);
        goto out;
    }
    if (adopt_signals(&sh, &sigs)) {
        log_app(LOG_ERROR, "cannot watch SIGTERM/SIGINT");
        goto out;
    }
    if (wc.sink == WRITER_JOURNAL && access("/run/systemd/journal/socket", W_OK))
        log_app(LOG_WARN, "no journald socket yet: records wait (not acked) until it appears");
    log_app(LOG_INFO, "logshipper up: metrics on %s:%lld, socket %s, sink %s", listen,
            sh.cfg.metrics_port, sh.cfg.socket_path,
            wc.sink == WRITER_JOURNAL ? "journal" : "stdout");

    sh.exit_code = 0;
    while (!sh.done)
        if (lws_service(sh.ctx, 0) < 0) {
            log_app(LOG_ERROR, "event loop failed");
            sh.exit_code = 1;
            break;
        }
out:
    if (sh.writer)
        writer_lws_detach(sh.writer);
    if (sh.links && !sh.draining)
        link_server_stop_listening(sh.links);
    if (sh.ctx)
        lws_context_destroy(sh.ctx);
    link_server_free(sh.links);
    writer_free(sh.writer);
    contracts_free(sh.contracts);
    prom_registry_free(sh.reg);
    config_free(&sh.cfg);
    return sh.exit_code;
}
