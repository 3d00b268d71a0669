// User errors: bad input a user can fix (a file, a flag, a missing adapter). The CLI prints their
// message as one line, `seal <command>: <message>`, with exit code 2; any other error is a bug and
// keeps its stack.
export class UserError extends Error {
  override name = 'UserError';
}
