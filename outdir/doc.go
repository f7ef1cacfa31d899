// Package outdir owns the life of a result folder (--out): it checks the
// folder before a run, stages the run's files in a private folder beside it,
// and puts them in place as a whole, so that a reader of --out at any instant
// sees the previous run's folder or the new one — never a mix, never nothing.
//
// # Ownership
//
// A folder is the tool's own when every entry in it is the manifest
// (ManifestName, a regular file whose Tool is "stackprobe") or a regular
// file that manifest lists. The tool only ever deletes, replaces or renames
// files such a manifest lists; it never follows a symbolic link inside --out
// and never deletes a file by the look of its name.
//
// # Life of a run
//
//	Check(dir, force, names)     during flag validation; writes nothing (exit 2 on error)
//	f, err := Begin(dir, force, names)
//	defer f.Close()              always; removes the staging folder unless committed, unlocks
//	... write each output to f.Path(name) ...
//	f.Commit(partial, written)   manifest + swap into place
//
// Begin takes an flock on a lock file beside --out (see LockName), so a second
// run into the same --out is refused at once, and removes what killed runs
// into the same --out left behind (staging folders and old folders proven by
// their manifest to be this tool's, for this --out). It then makes a fresh
// staging folder beside --out (same parent, so renames stay on one file
// system): ".stackprobe-" plus a random suffix, mode 0700, holding a manifest
// in state "staging" from its first instant.
//
// Commit writes the final manifest into the staging folder and then, by the
// state of --out at that moment:
//
//   - --out does not exist: renameat2(RENAME_NOREPLACE) of the staging folder
//     to --out.
//   - --out is the tool's own (or empty): renameat2(RENAME_EXCHANGE) swaps the
//     two folders in one step; the old folder, now under the staging name, is
//     then emptied of the files its manifest lists and removed.
//   - --out holds files the tool did not write (only with force): a swap
//     would carry the user's files away, so the files are moved in one by one.
//     First the manifest in --out is replaced by one in state "merging" that
//     lists the old and the new files; then each staged file is renamed over
//     its name (each rename is atomic: the old file or the new one); then the
//     old run's files this run did not write are removed; last the manifest is
//     replaced by the final one. A reader that finds state "merging" knows the
//     folder is between two runs; no user file is touched at any step.
//
// A failure before the swap (ENOSPC writing the manifest, a rename refused)
// leaves --out exactly as it was.
//
// Not covered: a user who replaces an owned output by a file of their own
// between Commit's check and its rename (merge case only) loses that file to
// the rename; the swap case has no such window.
package outdir
