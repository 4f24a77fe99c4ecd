//! The `zmtp` command-line tool (keygen, cat-style sockets, bench).

fn main() {
    eprintln!("zmtp: not yet implemented");
    std::process::exit(1);
}
