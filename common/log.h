/* log.h - each process's own diagnostics: one JSON object per line on stderr.
 * Keys: ts, level, logger ("app" or "api"), component, msg. Never pass tokens or secrets. */
#ifndef TLM_LOG_H
#define TLM_LOG_H

enum log_level { LOG_DEBUG = 0, LOG_INFO = 1, LOG_WARN = 2, LOG_ERROR = 3, LOG_OFF = 4 };
enum log_logger { LOGGER_APP = 0, LOGGER_API = 1 };

/* Parses "debug", "info", "warn"/"warning", "error", "off" (case-insensitive); -1 if unknown. */
int log_level_parse(const char *s);
/* component: "ingest" or "logshipper". Levels: APP_LOG_LEVEL and API_LOG_LEVEL. */
void log_setup(const char *component, int app_level, int api_level);
int log_enabled(enum log_logger logger, enum log_level level);
/* msg is printf-formatted; the result is escaped as a JSON string. */
void log_msg(enum log_logger logger, enum log_level level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#define log_app(level, ...) log_msg(LOGGER_APP, level, __VA_ARGS__)
#define log_api(level, ...) log_msg(LOGGER_API, level, __VA_ARGS__)

#endif
