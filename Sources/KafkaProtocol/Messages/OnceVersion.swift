/// The version of this Once build: what `once --version` prints, what the broker reports in its
/// ready line and `once_build_info` metric, and what OnceClient sends as its software version
/// (KIP-511). One place, changed with CHANGELOG.md.
public enum OnceVersion {
    public static let string = "0.3.0"
}
