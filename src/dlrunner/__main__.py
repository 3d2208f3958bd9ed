from dlrunner.cli import main

main()
