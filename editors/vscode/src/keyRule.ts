// When the API key may go to the server: only while the model server's URL is
// the user's own. A folder's .vscode/settings.json must not be able to send the
// key from secret storage to a URL of its choosing (issue 16).
//
// The server reads the URL from any spelling of `base_url` (baseUrl, base-url,
// a group {"base": {"url": ...}}; ds_lsp/config.py), and the extension passes
// undeclared dsLsp.* keys through, so every spelling is checked, not only the
// declared `dsLsp.baseUrl`. No `vscode` import: tests run this in plain Node.

/** config.py's snake_case: baseUrl, base-url, BASEUrl -> base_url. */
export function snakeCase(key: string): string {
  return key
    .replace(/-/g, '_')
    .replace(/([A-Z]+)([A-Z][a-z])/g, '$1_$2')
    .replace(/([a-z0-9])([A-Z])/g, '$1_$2')
    .toLowerCase();
}

/** The top-level keys of the `dsLsp` section that set the model server's URL. */
export function urlSettingKeys(section: Record<string, unknown>): string[] {
  return Object.entries(section)
    .filter(([key, value]) => {
      if (snakeCase(key) === 'base_url') {
        return true;
      }
      // A group, as config.py flattens it: {"base": {"url": ...}} is base_url.
      return (
        typeof value === 'object' &&
        value !== null &&
        !Array.isArray(value) &&
        Object.keys(value).some((inner) => `${snakeCase(key)}_${snakeCase(inner)}` === 'base_url')
      );
    })
    .map(([key]) => key);
}

/** What VS Code's WorkspaceConfiguration.inspect() says of one setting. */
export interface Inspected {
  workspaceValue?: unknown;
  workspaceFolderValue?: unknown;
}

/** The first URL setting a workspace or folder sets (the key must then stay
 * home), or undefined when the URL comes from the user's settings or ds-lsp's own. */
export function urlSetByWorkspace(
  section: Record<string, unknown>,
  inspect: (key: string) => Inspected | undefined,
): string | undefined {
  // The declared setting is checked even when unset: inspect sees every level.
  const keys = new Set(['baseUrl', ...urlSettingKeys(section)]);
  for (const key of keys) {
    const found = inspect(key);
    if (found && (found.workspaceValue !== undefined || found.workspaceFolderValue !== undefined)) {
      return key;
    }
  }
  return undefined;
}
