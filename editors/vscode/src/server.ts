// Finding the ds-lsp program: `dsLsp.serverCommand`, else `dsLsp.pythonPath -m ds_lsp`,
// else `ds-lsp` on the PATH. Checked before starting, so that a missing server
// gets a message that says how to install it rather than a failed spawn.
import { execFile } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';
import * as vscode from 'vscode';
import { Executable } from 'vscode-languageclient/node';
import { SECTION } from './settings';

export const INSTALL_HELP =
  'Install it with `pip install ds-lsp`, or from a clone of ds-lsp with `make install` and set ' +
  '"dsLsp.serverCommand" to <clone>/.venv/bin/ds-lsp. A Python that has it can also be named ' +
  'in "dsLsp.pythonPath".';

export type Resolved = { executable: Executable } | { problem: string };

export async function resolveServer(): Promise<Resolved> {
  const config = vscode.workspace.getConfiguration(SECTION);
  const configured = config.get<string | string[] | null>('serverCommand');
  const python = config.get<string | null>('pythonPath');

  if (configured && configured.length > 0) {
    // A string is one program (paths may contain spaces); an array is program and arguments.
    const [command, ...args] = typeof configured === 'string' ? [configured] : configured;
    const found = findProgram(command);
    if (!found) {
      return {
        problem: `ds-lsp could not start: "dsLsp.serverCommand" names ${command}, which was not found. ${INSTALL_HELP}`,
      };
    }
    return { executable: { command: found, args } };
  }

  if (python) {
    const found = findProgram(python);
    if (!found) {
      return {
        problem: `ds-lsp could not start: "dsLsp.pythonPath" names ${python}, which was not found. ${INSTALL_HELP}`,
      };
    }
    if (!(await hasModule(found, 'ds_lsp'))) {
      return { problem: `ds-lsp is not installed in ${found} ("dsLsp.pythonPath"). ${INSTALL_HELP}` };
    }
    return { executable: { command: found, args: ['-m', 'ds_lsp'] } };
  }

  const found = findProgram('ds-lsp');
  if (!found) {
    return { problem: `ds-lsp was not found on the PATH. ${INSTALL_HELP}` };
  }
  return { executable: { command: found, args: [] } };
}

/** The program's path: as given when it has a directory part, else looked up on the PATH. */
function findProgram(program: string): string | undefined {
  const expanded = program.replace(/^~(?=$|[\\/])/, process.env.HOME ?? process.env.USERPROFILE ?? '~');
  if (expanded.includes('/') || expanded.includes('\\')) {
    return isFile(expanded) ? expanded : undefined;
  }
  const extensions =
    process.platform === 'win32' ? (process.env.PATHEXT ?? '.EXE;.CMD;.BAT').split(';') : [''];
  for (const dir of (process.env.PATH ?? '').split(path.delimiter)) {
    for (const extension of extensions) {
      const candidate = path.join(dir, expanded + extension);
      if (dir && isFile(candidate)) {
        return candidate;
      }
    }
  }
  return undefined;
}

function isFile(file: string): boolean {
  try {
    return fs.statSync(file).isFile();
  } catch {
    return false;
  }
}

function hasModule(python: string, module: string): Promise<boolean> {
  return new Promise((resolve) => {
    execFile(
      python,
      ['-c', `import importlib.util, sys; sys.exit(importlib.util.find_spec("${module}") is None)`],
      { timeout: 20000 },
      (error) => resolve(!error),
    );
  });
}
