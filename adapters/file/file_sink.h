/*  file_sink - `sluice-file sink`: a durable subscription written to
 *  rotated NDJSON or raw files, exactly once across restarts. Main
 *  thread.  */
#ifndef FILE_SINK_H
#define FILE_SINK_H

/* The command (argv[0] is "sink"). Returns a FILE_EXIT_* code. */
int file_sink_main(int argc, char **argv);

#endif
