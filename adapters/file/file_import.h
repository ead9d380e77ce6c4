/*  file_import - `sluice-file import`: batch ingestion of NDJSON, CSV or
 *  raw lines, resumable exactly once. Main thread; one client per file.  */
#ifndef FILE_IMPORT_H
#define FILE_IMPORT_H

/* The command (argv[0] is "import"). Returns a FILE_EXIT_* code. */
int file_import_main(int argc, char **argv);

#endif
