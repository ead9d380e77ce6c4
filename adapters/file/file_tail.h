/*  file_tail - `sluice-file tail`: follow growing log files into a topic,
 *  every line once across restarts and rotations. Main thread.  */
#ifndef FILE_TAIL_H
#define FILE_TAIL_H

/* The command (argv[0] is "tail"). Returns a FILE_EXIT_* code. */
int file_tail_main(int argc, char **argv);

#endif
