from treasury.cli import main

main()
