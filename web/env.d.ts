/** shaders/*.wgsl by file name, bundled at build time (web/build.ts). */
declare module 'seal:shaders' {
  const files: Readonly<Record<string, string>>;
  export default files;
}
